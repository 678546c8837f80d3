"""Agent-level behaviour that the MemoryChain runs do not reach: Gaussian Stream AC, QRC traces."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rtu_core import TrainConfig
from rtu_core.agents import QRC, StreamAC
from rtu_core.agents.policy import categorical_log_prob, gaussian_log_prob
from rtu_core.config import ConfigError
from rtu_core.rng import MemberRandom


def gaussian_agent(**overrides):
    config = TrainConfig(hidden_size=6, width=5, population=2, **overrides)
    space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    return StreamAC(config, 4, space, gens, MemberRandom([11, 12]))


def test_gaussian_stream_ac_learns_a_continuous_bandit():
    """One-step episodes with reward -|a - target|²: the policy mean moves to the target."""
    agent = gaussian_agent(entropy_coeff=0.0)
    target = torch.tensor([0.5, -0.3, 0.2])
    obs = torch.ones(2, 4)
    first_mean = None
    for t in range(600):
        step = agent.act(obs)
        assert step.action.shape == (2, 3)
        reward = -((step.action - target) ** 2).sum(-1)
        agent.learn(step, reward, obs, torch.ones(2, dtype=torch.bool), torch.ones(2, dtype=torch.bool))
        greedy = agent.act(obs, greedy=True, learn=False).action
        agent.reset_memory()
        if first_mean is None:
            first_mean = greedy.clone()
    error_before = ((first_mean - target) ** 2).sum(-1)
    error_after = ((greedy - target) ** 2).sum(-1)
    assert torch.all(error_after < 0.3 * error_before), (error_before, error_after)
    assert agent.log_std.abs().max() > 0  # the log-std learns too


def test_qrc_cuts_traces_after_non_greedy_actions_and_episode_ends():
    config = TrainConfig(
        agent="qrc", hidden_size=6, width=5, population=2, steps=100, epsilon_start=0.5, epsilon_end=0.5
    )
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    agent = QRC(config, 3, gym.spaces.Discrete(2), gens, MemberRandom([1, 2]))
    obs = torch.randn(2, 3)
    cuts = 0
    for _ in range(40):
        step = agent.act(obs)
        nongreedy = step.nongreedy.clone()
        done = torch.tensor([False, True])
        agent.learn(step, torch.zeros(2), obs, done, done)
        traces = torch.stack([t.abs().flatten(1).sum(1) for t in agent.q_trace]).sum(0)
        expected_zero = nongreedy | done
        assert torch.all(traces[expected_zero] == 0)
        assert torch.all(traces[~expected_zero] > 0)
        cuts += int(nongreedy[0])
    assert 5 < cuts < 35  # ε = 0.5 with 2 actions: about a quarter of member 0's actions are not greedy


def test_policy_log_probabilities_and_entropies_equal_torch_distributions():
    torch.manual_seed(0)
    logits, action = torch.randn(5, 4, dtype=torch.float64), torch.randint(0, 4, (5,))
    log_prob, entropy = categorical_log_prob(logits, action)
    reference = torch.distributions.Categorical(logits=logits)
    assert torch.allclose(log_prob, reference.log_prob(action)) and torch.allclose(entropy, reference.entropy())
    mean, log_std = torch.randn(5, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    action = torch.randn(5, 3, dtype=torch.float64)
    log_prob, entropy = gaussian_log_prob(mean, log_std, action)
    reference = torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)
    assert torch.allclose(log_prob, reference.log_prob(action)) and torch.allclose(entropy, reference.entropy())


def test_qrc_without_gradient_correction_takes_watkins_q_lambda_steps_and_leaves_h_alone():
    """no_gradient_correction: h ≡ 0, so each Q step is α δ z_Q with z_Q ← γλ z_Q + ∇Q(o, a) (float64, autograd
    engine, checked against ∇Q computed apart); the h network never changes."""
    config = TrainConfig(
        agent="qrc", hidden_size=6, width=5, population=2, steps=100, dtype="float64", engine="eager",
        epsilon_start=0.0, epsilon_end=0.0, no_gradient_correction=True, lr_q=0.01, grad_clip=0.0,
    )  # fmt: skip
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    agent = QRC(config, 3, gym.spaces.Discrete(2), gens, MemberRandom([1, 2], dtype=torch.float64))
    h_before = [p.detach().clone() for p in agent.h_params]
    decay = config.gamma * config.trace_decay
    trace = [torch.zeros_like(p) for p in agent.q_params]
    torch.manual_seed(3)
    for t in range(6):
        obs, next_obs = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
        step = agent.act(obs)
        grads = torch.autograd.grad(step.q.sum(), agent.q_params, retain_graph=True)  # ∇Q(o, a), row per member
        trace = [decay * z + g for z, g in zip(trace, grads)]
        before = [p.detach().clone() for p in agent.q_params]
        done = torch.tensor([t == 5, False])
        delta = agent.learn(step, torch.randn(2, dtype=torch.float64), next_obs, done, done)
        for p, p0, z in zip(agent.q_params, before, trace):
            expected = p0 + config.lr_q * delta.reshape(-1, *[1] * (z.dim() - 1)) * z
            assert torch.allclose(p.detach(), expected, rtol=1e-10, atol=1e-13)
        trace = [z * (~done).reshape(-1, *[1] * (z.dim() - 1)) for z in trace]
    assert all(torch.equal(p.detach(), p0) for p, p0 in zip(agent.h_params, h_before))
    with pytest.raises(ConfigError, match="no-gradient-correction applies to agent qrc"):
        TrainConfig(agent="stream_ac", no_gradient_correction=True)
