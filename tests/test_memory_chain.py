"""MemoryChain: bsuite's episodes reproduced exactly, gymnasium conformity, the harder 'immediate' variant."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rtu_core  # noqa: F401  (registers the ids)
from rtu_core.envs import MEMORY_CHAIN_ID


class BsuiteMemoryChain:
    """bsuite 0.3.6's ``memory_chain.MemoryChain`` transcribed (docs/method.md §5), with the context and query
    given instead of drawn: the observation is built from the current timestep *before* it advances."""

    def __init__(self, memory_length: int, context: np.ndarray, query: int):
        self.memory_length, self.context, self.query = memory_length, context, query
        self.timestep = 0

    def get_observation(self) -> np.ndarray:
        obs = np.zeros(len(self.context) + 2, dtype=np.float32)
        obs[0] = 1 - self.timestep / self.memory_length  # the time, on every step
        if self.timestep == self.memory_length - 1:  # the query, on the last step
            obs[1] = self.query
        if self.timestep == 0:  # the context, on the first step
            obs[2:] = 2 * self.context - 1
        return obs

    def reset(self) -> np.ndarray:
        self.timestep = 0
        return self.get_observation()

    def step(self, action: int):
        observation = self.get_observation()
        self.timestep += 1
        if self.timestep - 1 < self.memory_length:
            return observation, 0.0, False
        return observation, (1.0 if action == self.context[self.query] else -1.0), True


def action_sequences(length: int, rng: np.random.Generator) -> list[list[int]]:
    n = length + 1
    return [[0] * n, [1] * n, [t % 2 for t in range(n)], list(rng.integers(0, 2, n))]


@pytest.mark.parametrize("num_bits", [1, 3])
@pytest.mark.parametrize("length", [1, 2, 3, 8])
def test_default_env_reproduces_bsuite_episodes(length, num_bits):
    env = gym.make(MEMORY_CHAIN_ID, chain_length=length, num_bits=num_bits)
    rng, contexts_seen = np.random.default_rng(length), set()
    for seed in range(12):
        for actions in action_sequences(length, rng):
            ours = env.reset(seed=seed)[0]
            inner = env.unwrapped
            reference = BsuiteMemoryChain(length, inner._context.copy(), inner._query)
            contexts_seen.add(tuple(inner._context))
            assert np.array_equal(ours, reference.reset())
            for t, action in enumerate(actions):
                obs, reward, terminated, truncated, info = env.step(action)
                want_obs, want_reward, want_done = reference.step(action)
                assert np.array_equal(obs, want_obs), (t, obs, want_obs)
                assert (reward, terminated, truncated) == (want_reward, want_done, False)
            assert terminated and info["is_success"] == (want_reward == 1.0)
    assert len(contexts_seen) > 1  # both values of the context bit(s) were tried


def test_hand_written_bsuite_episodes():
    """L = 2: the context at reset and again after the first action; the query in the observation answered from."""
    env = gym.make(MEMORY_CHAIN_ID, chain_length=2).unwrapped
    env.reset(seed=0)
    env._context, env._query = np.array([1]), 0
    assert env._observation(0).tolist() == [1.0, 0.0, 1.0]
    assert [env.step(0)[:3] for _ in range(2)] == [
        (pytest.approx([1.0, 0.0, 1.0]), 0.0, False),
        (pytest.approx([0.5, 0.0, 0.0]), 0.0, False),
    ]
    obs, reward, terminated, _, info = env.step(1)
    assert obs.tolist() == [0.0, 0.0, 0.0] and reward == 1.0 and terminated and info["is_success"]

    env = gym.make(MEMORY_CHAIN_ID, chain_length=2, num_bits=3).unwrapped
    env.reset(seed=0)
    env._context, env._query = np.array([1, 0, 1]), 2
    seen = [env._observation(0)] + [env.step(0)[0] for _ in range(2)]
    assert [o.tolist() for o in seen] == [[1, 0, 1, -1, 1], [1, 0, 1, -1, 1], [0.5, 2, 0, 0, 0]]
    assert env.step(0)[1] == -1.0  # context[2] = 1


def test_query_index_is_visible_before_the_decision_with_several_bits():
    for timing in ("bsuite", "immediate"):
        env = gym.make(MEMORY_CHAIN_ID, chain_length=4, num_bits=3, observation_timing=timing)
        for seed in range(30):
            obs, _ = env.reset(seed=seed)
            seen = [obs] + [env.step(0)[0] for _ in range(4)]
            query = env.unwrapped._query
            assert seen[-1][1] == query and all(o[1] == 0 for o in seen[:-1])
            assert env.observation_space.contains(seen[-1])


def test_immediate_variant_shows_the_context_once_and_is_one_step_longer():
    env = gym.make(MEMORY_CHAIN_ID, chain_length=3, observation_timing="immediate")
    first, _ = env.reset(seed=0)
    seen = [first] + [env.step(0)[0] for _ in range(3)]
    assert [o[0] for o in seen] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert [o[2] != 0 for o in seen] == [True, False, False, False]
    assert env.step(0)[2]  # the (L+1)-th action ends the episode


@pytest.mark.parametrize("timing", ["bsuite", "immediate"])
@pytest.mark.parametrize("num_bits", [1, 3])
def test_passes_gymnasium_env_checker(timing, num_bits):
    check_env(gym.make(MEMORY_CHAIN_ID, chain_length=5, num_bits=num_bits, observation_timing=timing).unwrapped)


def test_context_is_balanced_and_seeded():
    env = gym.make(MEMORY_CHAIN_ID, chain_length=3)
    contexts = [env.reset(seed=s)[0][2] for s in range(400)]
    assert 0.4 < np.mean(np.array(contexts) > 0) < 0.6
    assert env.reset(seed=11)[0][2] == env.reset(seed=11)[0][2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(chain_length=0), "chain_length"),
        (dict(chain_length=2.5), "chain_length"),
        (dict(num_bits=0), "num_bits"),
        (dict(observation_timing="late"), "observation_timing"),
    ],
)
def test_rejects_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(MEMORY_CHAIN_ID, **kwargs)


@pytest.mark.parametrize("num_bits", [1, 3])
def test_batched_population_equals_gymnasium_envs_stepped_one_by_one(num_bits):
    """MemoryChainPopulation (one NumPy batch) gives bit for bit what EnvPopulation of gym.make'd envs gives, for
    members of mixed chain lengths and timings, over many episodes with resets chosen by the loop."""
    from rtu_core.envs import make_env
    from rtu_core.envs.memory_chain import MemoryChainPopulation
    from rtu_core.envs.population import EnvPopulation

    lengths, timings = [1, 2, 5, 16, 3, 7], ["bsuite", "immediate", "bsuite", "bsuite", "immediate", "bsuite"]
    seeds = [11, 12, 13, 14, 15, 2**40]
    batch = MemoryChainPopulation(lengths, timings, seeds, num_bits)
    single = EnvPopulation(
        [
            lambda L=L, t=t: make_env("memory_chain", chain_length=L, num_bits=num_bits, observation_timing=t)
            for L, t in zip(lengths, timings)
        ],
        seeds,
    )
    assert batch.observation_space == single.observation_space and batch.action_space == single.action_space
    obs_b, obs_s = batch.reset(), single.reset()
    assert np.array_equal(obs_b, obs_s)
    rng, ends = np.random.default_rng(0), 0
    for _ in range(300):
        actions = rng.integers(0, 2, len(seeds))
        out_b, out_s = batch.step(actions), single.step(actions)
        for got, want in zip(out_b[:4], out_s[:4]):
            assert got.dtype == want.dtype and np.array_equal(got, want)
        done = out_s[2] | out_s[3]
        assert [dict(out_b[4][i]) for i in range(len(seeds))] == [dict(i) for i in out_s[4]]
        obs_b, obs_s = batch.reset_members(out_b[0], done), single.reset_members(out_s[0], done)
        assert np.array_equal(obs_b, obs_s)
        ends += int(done.sum())
    assert ends > 100
    with pytest.raises(ValueError, match="invalid actions"):
        batch.step(np.array([0, 1, 2, 0, 0, 0]))
