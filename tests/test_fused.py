"""The hand-written backward of ``rtu_core.engines.fused`` == autograd through the network (float64), and a Stream AC
agent using it takes the same steps as the autograd agent."""

import dataclasses

import gymnasium as gym
import pytest
import torch

from rtu_core import TrainConfig
from rtu_core.agents import FusedStreamAC, StreamAC, make_agent
from rtu_core.agents.policy import (
    categorical,
    categorical_action,
    categorical_grad,
    gaussian,
    gaussian_action,
    gaussian_grads,
)
from rtu_core.engines import fused
from rtu_core.network import MemoryNetwork
from rtu_core.rng import MemberRandom

OBS, OUT, P = 4, 3, 2


def make_network(
    nonlinear: bool, activation: str, feature_layers: int = 1, head_width: int = 0, taylor: bool = False
) -> MemoryNetwork:
    torch.manual_seed(0)
    return MemoryNetwork(
        OBS,
        OUT,
        cell="rtu",
        mode="rtrl",
        hidden_size=5,
        width=6,
        sparsity=0.5,
        population=P,
        nonlinear_rtu=nonlinear,
        activation=activation,
        feature_layers=feature_layers,
        head_width=head_width,
        taylor=taylor,
        generators=[torch.Generator().manual_seed(i) for i in range(P)],
    ).double()


def autograd_steps(net: MemoryNetwork, steps: int = 7):
    """(o_t, g, out_t, RTRL state_t, d(g · out_t)/dp for every parameter) by autograd, step after step."""
    memory = net.initial_memory()
    for _ in range(steps):
        obs, grad_out = torch.randn(P, OBS, dtype=torch.float64), torch.randn(P, OUT, dtype=torch.float64)
        out, memory = net.step(obs, memory)
        yield obs, grad_out, out.detach(), memory, torch.autograd.grad((grad_out * out).sum(), list(net.parameters()))


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
@pytest.mark.parametrize("activation", ["leaky_relu", "tanh", "relu"])
def test_fused_gradients_equal_autograd_through_the_network(nonlinear, activation):
    net = make_network(nonlinear, activation)
    memory = net.initial_memory()
    for obs, grad_out, out, _, expected in autograd_steps(net):
        out_fused, memory, tape = fused.forward(net, obs, memory)
        assert torch.allclose(out_fused, out, rtol=1e-12, atol=1e-13)
        fused.backward(net, tape, memory, grad_out)
        for (name, p), e in zip(net.named_parameters(), expected):
            assert torch.allclose(p.grad, e, rtol=1e-10, atol=1e-13), name
            p.grad = None


def test_policy_gradients_equal_autograd():
    torch.manual_seed(1)
    logits = torch.randn(P, 5, dtype=torch.float64, requires_grad=True)
    coeff = torch.tensor([0.3, -0.3], dtype=torch.float64)
    action, log_prob, entropy = categorical(logits, torch.rand(P, 1, dtype=torch.float64))
    (expected,) = torch.autograd.grad((log_prob + coeff * entropy).sum(), logits)
    assert torch.allclose(categorical_grad(logits.detach(), action, coeff), expected, rtol=1e-12, atol=1e-14)
    mean = torch.randn(P, 3, dtype=torch.float64, requires_grad=True)
    log_std = torch.randn(P, 3, dtype=torch.float64, requires_grad=True)
    action, log_prob, entropy = gaussian(mean, log_std, torch.randn(P, 3, dtype=torch.float64))
    expected = torch.autograd.grad((log_prob + coeff * entropy).sum(), (mean, log_std))
    for got, e in zip(gaussian_grads(mean.detach(), log_std.detach(), action, coeff), expected):
        assert torch.allclose(got, e, rtol=1e-12, atol=1e-14)


def test_sampled_actions_follow_the_distribution_and_need_no_graph():
    """The action alone (the hand-written steps' and evaluation's) is the one the full policy samples from the same
    draw, carries no gradient, and follows π: the inverse CDF of u picks each action with its probability."""
    torch.manual_seed(3)
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    draws = torch.rand(4, 1, dtype=torch.float64)
    action = categorical_action(logits, draws)
    assert torch.equal(action, categorical(logits, draws)[0]) and not action.requires_grad
    assert torch.equal(categorical_action(logits, None), logits.argmax(-1))
    u = torch.rand(200_000, 1, dtype=torch.float64)
    counts = torch.bincount(categorical_action(logits[:1].expand(len(u), 3), u), minlength=3).double() / len(u)
    assert torch.allclose(counts, torch.softmax(logits[0].detach(), -1), atol=0.005)
    mean, log_std = torch.randn(4, 2, dtype=torch.float64, requires_grad=True), torch.zeros(4, 2, dtype=torch.float64)
    noise = torch.randn(4, 2, dtype=torch.float64)
    action = gaussian_action(mean, log_std, noise)
    assert torch.equal(action, gaussian(mean, log_std, noise)[0]) and not action.requires_grad
    assert torch.equal(gaussian_action(mean, log_std, None), mean.detach())


@pytest.mark.parametrize("discrete", [True, False], ids=["categorical", "gaussian"])
def test_fused_agent_takes_the_autograd_agents_steps(discrete):
    torch.manual_seed(2)
    config = TrainConfig(hidden_size=5, width=6, population=P, dtype="float64", engine="eager")
    space = gym.spaces.Discrete(OUT) if discrete else gym.spaces.Box(-1, 1, (OUT,))
    agent, twin = (
        make_agent(
            dataclasses.replace(config, engine=engine),
            OBS,
            space,
            [torch.Generator().manual_seed(i) for i in range(P)],
            MemberRandom([5, 6], dtype=torch.float64),
        )
        for engine in ("eager", "autograd")
    )
    assert isinstance(agent, FusedStreamAC) and type(twin) is StreamAC
    for t in range(12):
        obs = torch.randn(P, OBS, dtype=torch.float64)
        reward, next_obs = torch.randn(P, dtype=torch.float64), torch.randn(P, OBS, dtype=torch.float64)
        done = torch.tensor([t % 5 == 4, t % 7 == 6])
        steps = agent.act(obs), twin.act(obs)
        actions = steps[0].action, steps[1].action
        assert torch.equal(actions[0], actions[1]) if discrete else torch.allclose(*actions, rtol=1e-10)
        deltas = agent.learn(steps[0], reward, next_obs, done, done), twin.learn(steps[1], reward, next_obs, done, done)
        assert torch.allclose(*deltas, rtol=1e-10, atol=1e-12)
    for a, b in zip(
        agent.actor_optimizer.params + agent.critic_optimizer.params,
        twin.actor_optimizer.params + twin.critic_optimizer.params,
    ):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)
