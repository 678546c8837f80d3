"""KMemoryChain and RTRL staleness (paper §4.4): the environment, the replay of an episode under the current
parameters (== autograd's ∂h_t/∂p of the unrolled episode), the staleness measure and the refresh option."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from rtu_core import ConfigError, Staleness, TrainConfig, train
from rtu_core.agents import make_agent
from rtu_core.cells.rtu import PARAMETERS
from rtu_core.envs import KMEMORY_CHAIN_ID
from rtu_core.network import MemoryNetwork
from rtu_core.results import RunRecorder
from rtu_core.rng import MemberRandom


@pytest.mark.parametrize("k", [1, 4])
def test_kmemory_chain_passes_env_checker(k):
    check_env(gym.make(KMEMORY_CHAIN_ID, memory_length=k).unwrapped, skip_render_check=True)


def play(env, seed: int, policy):
    """One episode; ``policy(bits_seen, time)`` picks each action from the bits observed so far."""
    obs, _ = env.reset(seed=seed)
    bits, rewards, time = [int(obs[0] > 0)], [], 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(bits, time))
        assert not truncated and obs[1] == pytest.approx(1 - time / env.unwrapped.episode_steps)
        rewards.append(reward)
        if time:  # the step at time j returns the state of time j: its newest bit b_j
            bits.append(int(obs[0] > 0))
        time += 1
        if terminated:
            return bits, rewards, info


@pytest.mark.parametrize("k", [1, 3, 8])
def test_kmemory_chain_rewards_recalling_the_bit_from_k_steps_back(k):
    """bsuite's timing: the step at time j returns the observation of time j (b₀ is seen twice); from time k on
    each action is scored against b_{j-k}; 8k steps per episode, 7k of them rewarded."""
    env = gym.make(KMEMORY_CHAIN_ID, memory_length=k)
    recall = lambda bits, time: bits[time - k] if time >= k else 0  # noqa: E731
    for seed in range(5):
        bits, rewards, info = play(env, seed, recall)
        assert len(rewards) == 8 * k and rewards[:k] == [0.0] * k and rewards[k:] == [1.0] * (7 * k)
        assert info["success_rate"] == 1.0
        assert len(bits) == 8 * k  # b₀ … b_{8k-1}, one per time step
    _, rewards, info = play(env, 0, lambda bits, time: 1 - bits[time - k] if time >= k else 0)
    assert rewards[k:] == [-1.0] * (7 * k) and info["success_rate"] == 0.0
    rates = [play(env, seed, lambda bits, time: 0)[2]["success_rate"] for seed in range(40)]
    assert 0.4 < np.mean(rates) < 0.6  # chance 0.5


def test_kmemory_chain_first_bit_is_seen_twice_and_bits_are_fresh():
    env = gym.make(KMEMORY_CHAIN_ID, memory_length=2)
    obs, _ = env.reset(seed=3)
    assert np.array_equal(env.step(0)[0][:1], obs[:1])
    streams = {tuple(play(env, seed, lambda bits, time: 0)[0]) for seed in range(6)}
    assert len(streams) == 6 and env.reset(seed=4)[0].tolist() == env.reset(seed=4)[0].tolist()


@pytest.mark.parametrize("kwargs", [dict(memory_length=0), dict(memory_length=1.5), dict(horizons=1)])
def test_kmemory_chain_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        gym.make(KMEMORY_CHAIN_ID, **kwargs)


def test_kmemory_chain_success_is_the_fraction_of_right_decisions():
    config = TrainConfig(env="kmemory_chain", chain_length=2, steps=200, hidden_size=4, width=4, eval_episodes=2)
    recorder = RunRecorder(config)
    for event in train(config):
        recorder.record(event)
    successes = [e.success for e in recorder.episodes[0]]
    assert len(successes) == 200 // 16 and all(0.0 <= s <= 1.0 for s in successes)
    assert any(0.0 < s < 1.0 for s in successes)  # fractions, not win/lose
    assert 0.0 <= recorder.summary()["eval_success_rate"] <= 1.0


def rtu_network(seed: int = 3) -> MemoryNetwork:
    return MemoryNetwork(
        4,
        2,
        cell="rtu",
        mode="rtrl",
        hidden_size=5,
        width=6,
        sparsity=0.0,
        population=2,
        generators=[torch.Generator().manual_seed(seed + i) for i in range(2)],
    ).double()


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
def test_replay_gives_autograd_sensitivities_of_the_current_network(nonlinear):
    """S_t of the replay == ∂h_t/∂p by autograd through the unrolled episode (member 1 starts later)."""
    torch.manual_seed(0)
    net = MemoryNetwork(
        4,
        2,
        cell="rtu",
        mode="rtrl",
        hidden_size=5,
        width=6,
        sparsity=0.0,
        population=2,
        nonlinear_rtu=nonlinear,
        generators=[torch.Generator().manual_seed(i) for i in range(2)],
    ).double()
    T, begin = 12, 5
    observations = torch.randn(T, 2, 4, dtype=torch.float64)
    starts = torch.zeros(T, 2, dtype=torch.bool)
    starts[0] = True
    starts[begin, 1] = True
    fresh = net.replay(observations, starts)
    hidden = net.cell.initial_hidden()
    for t in range(T):
        hidden = MemoryNetwork.reset_memory(hidden, starts[t])
        hidden = net.cell(net._features(observations[t]), hidden)[1]
    c1, c2 = hidden.chunk(2, dim=-1)
    assert torch.allclose(torch.complex(c1, c2), fresh.hidden, rtol=1e-12, atol=1e-14)
    for member in range(2):
        for k in range(5):  # ∂c_k/∂p for each unit: one row of the Jacobian per backward
            for part, value in ((0, c1), (1, c2)):
                grads = torch.autograd.grad(
                    value[member, k], [getattr(net.cell, p) for p in PARAMETERS], retain_graph=True
                )
                for name, grad in zip(PARAMETERS, grads):
                    s = getattr(fresh, name)[member, k]
                    expected = s.real if part == 0 else s.imag
                    got = grad[member, k]
                    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-13), (member, k, name)
                    assert grad[1 - member].abs().max() == 0  # members do not mix


def stream_ac(**overrides):
    config = TrainConfig(
        env="kmemory_chain",
        chain_length=3,
        hidden_size=5,
        width=6,
        population=2,
        dtype="float64",
        staleness_every=1,
        **overrides,
    )
    agent = make_agent(
        config,
        4,
        gym.spaces.Discrete(4),
        [torch.Generator().manual_seed(i) for i in range(2)],
        MemberRandom([11, 12], dtype=torch.float64),
    )
    return agent


def transition(agent, done):
    """One act-learn step on random inputs."""
    step = agent.act(torch.randn(2, 4, dtype=torch.float64))
    reward = torch.tensor([1.0, -1.0], dtype=torch.float64)
    next_obs = torch.randn(2, 4, dtype=torch.float64)
    done = torch.tensor(done)
    agent.learn(step, reward, next_obs, done, done)


def test_no_staleness_without_updates_and_some_after_them():
    torch.manual_seed(1)
    agent = stream_ac()
    for _ in range(3):  # act only: the parameters never change
        agent.act(torch.randn(2, 4, dtype=torch.float64))
    assert all(np.allclose(e, 0.0, atol=1e-12) for e in agent.staleness().values())
    for _ in range(3):  # now learn from every step
        transition(agent, [False, False])
    errors = agent.staleness()
    assert all((e > 1e-6).all() and np.isfinite(e).all() for e in errors.values())
    agent.refresh_rtrl()
    assert all(np.allclose(e, 0.0, atol=1e-12) for e in agent.staleness().values())


def test_history_keeps_only_running_episodes_and_marks_fresh_members():
    torch.manual_seed(2)
    agent = stream_ac()
    for step in range(7):
        transition(agent, [step == 2, step == 4])  # member 0 restarts after step 2, member 1 after step 4
    history = agent.history
    assert len(history.observations) == 4  # member 0's episode began at step 3: steps 3-6 kept
    assert history.starts[0].tolist() == [True, False] and history.starts[2].tolist() == [False, True]
    agent.reset_memory(torch.tensor([True, False]))  # member 0 ends again: its memory is zero, NaN staleness
    errors = agent.staleness()
    assert all(np.isnan(e[0]) and np.isfinite(e[1]) for e in errors.values())
    assert all(m.hidden[0].abs().max() == 0 for m in agent.fresh_memories().values())


def test_refresh_and_staleness_runs_keep_population_equal_to_solo():
    base = TrainConfig(
        env="kmemory_chain",
        chain_length=3,
        steps=300,
        hidden_size=6,
        width=6,
        dtype="float64",
        eval_episodes=3,
        staleness_every=7,
        rtrl_refresh=5,
        seed=4,
    )
    population = RunRecorder([dataclasses.replace(base, seed=4), dataclasses.replace(base, seed=5, chain_length=5)])
    for event in train(population.members):
        population.record(event)
    for i, member in enumerate(population.members):
        solo = RunRecorder(member)
        events = list(train(member))
        for event in events:
            solo.record(event)
        assert population.episodes_csv(i) == solo.episodes_csv(0)
        # the same to rounding (a population's batched kernels may round differently in the last bits, and over
        # 40-step episodes of large updates the replay amplifies float32 rounding: float64 here)
        assert population.member_summary(i)["sensitivity_staleness"] == pytest.approx(
            solo.member_summary(0)["sensitivity_staleness"], rel=1e-3
        )
        assert 0 < solo.member_summary(0)["sensitivity_staleness"] < 1
        assert sum(isinstance(e, Staleness) for e in events) == 300 // 7


@pytest.mark.parametrize("taylor", [False, True], ids=["plain", "taylor"])
@pytest.mark.parametrize("agent", ["qrc", "stream_ac"])
def test_native_and_eager_engines_measure_the_same_staleness(agent, taylor):
    """The staleness measured during training (an eager replay under the current parameters) is the same whichever
    engine trains: the native loops update the parameters in place through views of a flat row, and the replay must
    see every update (a regression: it once read the RTU coefficients cached at its first measurement)."""
    base = TrainConfig(
        env="kmemory_chain",
        chain_length=4,
        agent=agent,
        steps=240,
        hidden_size=6,
        width=6,
        dtype="float64",
        eval_episodes=2,
        staleness_every=29,
        taylor_sensitivity=taylor,
    )
    runs = {engine: RunRecorder(dataclasses.replace(base, engine=engine)) for engine in ("native", "eager")}
    curves = {}
    for engine, recorder in runs.items():
        curves[engine] = []
        for event in train(recorder.config):
            recorder.record(event)
            if isinstance(event, Staleness):
                curves[engine].append(np.concatenate([e for e in event.errors.values()]))
    assert runs["native"].episodes_csv(0) == runs["eager"].episodes_csv(0)
    assert len(curves["native"]) == 240 // 29
    np.testing.assert_allclose(curves["native"], curves["eager"], rtol=1e-5)  # (float64 rounding, amplified)
    assert runs["native"].member_summary(0)["eval_return"] == runs["eager"].member_summary(0)["eval_return"]


def test_refresh_changes_learning():
    base = TrainConfig(env="kmemory_chain", chain_length=3, steps=200, hidden_size=6, width=6, eval_episodes=0)
    runs = [RunRecorder(dataclasses.replace(base, rtrl_refresh=k)) for k in (0, 1)]
    for recorder in runs:
        for event in train(recorder.config):
            recorder.record(event)
    assert runs[0].episodes_csv(0) != runs[1].episodes_csv(0)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(mode="tbptt", cell="gru", rtrl_refresh=2),
        dict(agent="ppo", staleness_every=1),
        dict(rtrl_refresh=-1),
        dict(env="kmemory_chain", num_bits=2),
        dict(env="kmemory_chain", chain_length=0),
        dict(taylor_sensitivity=True, cell="gru"),
        dict(taylor_sensitivity=True, cell="rtu", mode="tbptt"),
        dict(taylor_sensitivity=True, agent="ppo"),
    ],
)
def test_bad_staleness_options_are_config_errors(overrides):
    with pytest.raises(ConfigError):
        TrainConfig(**overrides)


def test_lab_offers_kmemory_chain_and_refresh_for_streaming_rtrl_only(monkeypatch):
    import panel as pn

    from lab.app import LabApp

    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: None)
    app = LabApp()
    app.settings.param.update(task="kmemory_chain", chain_length=3, rtrl_refresh=4, hidden_size=6, width=5)
    config = app.settings.config()
    assert (config.env, config.chain_length, config.rtrl_refresh, config.mode) == ("kmemory_chain", 3, 4, "rtrl")
    app.settings.cell = "gru"
    assert app.settings.config().rtrl_refresh == 0
    app.settings.cell = "rtu"
    app.sweep.param.update(chain_lengths=[2, 4], methods=["rtu-rtrl", "rtu-tbptt"], seeds=1, steps=200)
    rtrl, tbptt = app.sweep.jobs()  # the tab's chain-length sweep works on KMemoryChain too
    assert {c.rtrl_refresh for c in rtrl} == {4} and {c.rtrl_refresh for c in tbptt} == {0}
    assert {c.env for c in rtrl + tbptt} == {"kmemory_chain"}
