"""MemoryChain: bsuite semantics, gymnasium conformity, the paper's lagged variant."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rtu_core  # noqa: F401  (registers the ids)
from rtu_core.envs import MEMORY_CHAIN_ID


@pytest.mark.parametrize("lagged", [False, True])
def test_passes_gymnasium_env_checker(lagged):
    check_env(gym.make(MEMORY_CHAIN_ID, chain_length=5, lagged_observation=lagged).unwrapped)


@pytest.mark.parametrize("length", [1, 2, 7])
def test_episode_reward_and_observations(length):
    env = gym.make(MEMORY_CHAIN_ID, chain_length=length)
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        context = int(obs[2] > 0)
        assert obs[0] == 1.0 and obs[1] == 0.0 and abs(obs[2]) == 1.0
        answer = context if seed % 2 == 0 else 1 - context
        for t in range(1, length + 1):
            obs, reward, terminated, truncated, info = env.step(0)
            assert reward == 0.0 and not terminated and not truncated
            assert obs[0] == pytest.approx(1 - t / length) and obs[2] == 0.0
        obs, reward, terminated, truncated, info = env.step(answer)
        assert terminated and not truncated
        assert reward == (1.0 if answer == context else -1.0)
        assert info["is_success"] == (answer == context)


def test_context_is_balanced_and_seeded():
    env = gym.make(MEMORY_CHAIN_ID, chain_length=3)
    contexts = [env.reset(seed=s)[0][2] for s in range(400)]
    assert 0.4 < np.mean(np.array(contexts) > 0) < 0.6
    assert env.reset(seed=11)[0][2] == env.reset(seed=11)[0][2]


def test_lagged_observation_arrives_one_step_late():
    env = gym.make(MEMORY_CHAIN_ID, chain_length=3, lagged_observation=True)
    first, _ = env.reset(seed=0)
    seen = [first] + [env.step(0)[0] for _ in range(3)]
    assert np.array_equal(seen[0], seen[1])                     # context seen twice
    assert [o[0] for o in seen] == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3])
    assert env.step(0)[2]                                       # the (L+1)-th action ends the episode


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_rejects_invalid_chain_length(bad):
    with pytest.raises(ValueError, match="chain_length"):
        gym.make(MEMORY_CHAIN_ID, chain_length=bad)
