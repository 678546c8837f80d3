"""``rtu_core.compiled``: the real-pair graphs equal autograd through the network (float64), a compiled agent takes
the eager agent's steps, agents share one compiled graph, compiled runs are deterministic, and ``compile`` leaves
settings without a compiled step alone."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rtu_core import EpisodeEnd, Progress, TrainConfig, compiled, train
from rtu_core.agents import AGENTS
from rtu_core.rng import MemberRandom

from .test_fused import OBS, OUT, P, autograd_steps, make_network


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
@pytest.mark.parametrize("activation", ["leaky_relu", "tanh", "relu"])
def test_real_pair_network_gradients_equal_autograd(nonlinear, activation):
    """The graphs' equations, run eagerly: out_t, the RTRL state and every parameter's gradient over 7 steps."""
    net = make_network(nonlinear, activation)
    params = tuple(net.parameters())
    pairs = compiled.as_pairs(net.initial_memory())
    for obs, grad_out, out, memory, expected in autograd_steps(net):
        with torch.no_grad():
            out_pairs, pairs, tape = compiled._network_forward(params, obs, pairs, activation, nonlinear)
            grads = compiled._network_backward(params, tape, pairs, grad_out, activation, nonlinear)
        assert torch.allclose(out_pairs, out, rtol=1e-12, atol=1e-13)
        for got, want in zip(compiled.from_pairs(pairs), memory):
            assert torch.allclose(got, want, rtol=1e-12, atol=1e-13)
        for (name, _), got, want in zip(net.named_parameters(), grads, expected):
            assert torch.allclose(got, want, rtol=1e-10, atol=1e-13), name


def agent_pair(discrete: bool, nonlinear: bool):
    config = TrainConfig(
        hidden_size=5,
        width=6,
        population=P,
        dtype="float64",
        nonlinear_rtu=nonlinear,
        engine="eager",
        activation="leaky_relu" if discrete else "tanh",
    )
    space = gym.spaces.Discrete(OUT) if discrete else gym.spaces.Box(-1, 1, (OUT,))
    make = lambda compile: AGENTS["stream_ac"](  # noqa: E731
        TrainConfig(**{**config.to_dict(), "compile": compile}),
        OBS,
        space,
        [torch.Generator().manual_seed(i) for i in range(P)],
        MemberRandom([5, 6], dtype=torch.float64),
    )
    return make(True), make(False)


@pytest.mark.parametrize(
    "discrete, nonlinear", [(True, False), (False, True)], ids=["categorical-linear", "gaussian-nonlinear"]
)
def test_compiled_agent_takes_the_eager_agents_steps(discrete, nonlinear):
    torch.manual_seed(2)
    agent, twin = agent_pair(discrete, nonlinear)
    assert agent.compiled is not None and twin.compiled is None
    for t in range(12):
        obs = torch.randn(P, OBS, dtype=torch.float64)
        reward, next_obs = torch.randn(P, dtype=torch.float64), torch.randn(P, OBS, dtype=torch.float64)
        done = torch.tensor([t % 5 == 4, t % 7 == 6])
        steps = agent.act(obs), twin.act(obs)
        actions = steps[0].action, steps[1].action
        assert torch.equal(*actions) if discrete else torch.allclose(*actions, rtol=1e-10)
        deltas = agent.learn(steps[0], reward, next_obs, done, done), twin.learn(steps[1], reward, next_obs, done, done)
        assert torch.allclose(*deltas, rtol=1e-10, atol=1e-12)
    for a, b in zip(
        agent.actor_optimizer.params + agent.critic_optimizer.params,
        twin.actor_optimizer.params + twin.critic_optimizer.params,
    ):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)
    assert torch.allclose(agent.actor_optimizer.flat_trace, twin.actor_optimizer.flat_trace, rtol=1e-9, atol=1e-11)


def test_compiled_runs_are_deterministic_and_members_match_their_solo_runs():
    """Same seed, same numbers; three agents in one process share the compiled graphs (torch.compile's recompile
    limit would otherwise be hit by a sweep's many agents); a population member equals its solo run up to float
    rounding (not bit for bit as in eager mode: the generated kernels depend on the population's shape)."""

    def run(**override) -> tuple[list, np.ndarray]:
        config = TrainConfig(
            **{
                **dict(
                    chain_length=4,
                    steps=600,
                    hidden_size=8,
                    width=8,
                    population=2,
                    eval_episodes=5,
                    progress_every=50,
                    compile=True,
                ),
                **override,
            }
        )
        events = list(train(config))
        return (
            [(e.member, e.step, e.episode_return) for e in events if isinstance(e, EpisodeEnd)],
            np.array([e.td_error for e in events if isinstance(e, Progress)]),
        )

    (episodes, td_errors), (episodes_again, td_errors_again) = run(), run()
    assert episodes == episodes_again and len(episodes) > 100 and np.array_equal(td_errors, td_errors_again)
    _, solo_td_errors = run(seed=1, population=1)
    assert np.allclose(solo_td_errors[:, 0], td_errors[:, 1], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "override",
    [dict(cell="gru", mode="tbptt"), dict(agent="qrc"), dict(optimizer="adaptive_obgd")],
    ids=["gru", "qrc", "adaptive_obgd"],
)
def test_compile_leaves_settings_without_a_compiled_step_unchanged(override):
    config = TrainConfig(chain_length=3, steps=150, hidden_size=4, width=4, eval_episodes=2, **override)
    assert not TrainConfig(**{**config.to_dict(), "compile": True}).compiled_step
    runs = [
        [
            (e.step, e.episode_return)
            for e in train(TrainConfig(**{**config.to_dict(), "compile": c}))
            if isinstance(e, EpisodeEnd)
        ]
        for c in (False, True)
    ]
    assert runs[0] == runs[1] and runs[0]
