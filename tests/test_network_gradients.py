"""Gradient horizons through the agents' network: RTRL reaches every past step for the RTU's own
parameters; TBPTT(1) stops after one step; and eligibility traces compose with RTRL."""

import pytest
import torch

from rtu_core.cells.rtu import PARAMETERS
from rtu_core.network import MemoryNetwork
from rtu_core.optim import ObGD

OBS, OUT, T = 3, 2, 60


def network(cell: str, mode: str, nonlinear: bool = False) -> MemoryNetwork:
    gens = [torch.Generator().manual_seed(7)]
    return MemoryNetwork(
        OBS,
        OUT,
        cell=cell,
        mode=mode,
        hidden_size=6,
        width=5,
        head_width=4,
        nonlinear_rtu=nonlinear,
        sparsity=0.0,
        population=1,
        generators=gens,
    ).double()


def rtu_parameters(net: MemoryNetwork) -> list[torch.Tensor]:
    return [getattr(net.cell, p) for p in PARAMETERS]


def bptt_network_output(net: MemoryNetwork, observations, weights) -> torch.Tensor:
    """sum_t w_t . out_t through the fully unrolled network (autograd everywhere)."""
    h, total = net.cell.initial_hidden(), 0.0
    for obs, w in zip(observations, weights):
        x = net._features(obs)
        y, h = net.cell(x, h)
        total = total + (w * net._read_out(y)).sum()
    return total


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
def test_rtrl_mode_gives_full_bptt_gradient_for_rtu_parameters(nonlinear):
    torch.manual_seed(0)
    net = network("rtu", "rtrl", nonlinear)
    observations = torch.randn(T, 1, OBS, dtype=torch.float64)
    weights = torch.randn(T, 1, OUT, dtype=torch.float64)
    expected = torch.autograd.grad(bptt_network_output(net, observations, weights), rtu_parameters(net))
    memory = net.initial_memory()
    for obs, w in zip(observations, weights):
        out, memory = net.step(obs, memory)
        (w * out).sum().backward()
    for p, e in zip(rtu_parameters(net), expected):
        assert torch.allclose(p.grad, e, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cell", ["rtu", "gru"])
def test_tbptt_gradient_does_not_reach_two_steps_back(cell):
    torch.manual_seed(1)
    net = network(cell, "tbptt")
    observations = [torch.randn(1, OBS, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    memory = net.initial_memory()
    for obs in observations:
        out, memory = net.step(obs, memory)
    grads = torch.autograd.grad(out.sum(), observations, allow_unused=True)
    assert grads[0] is None and grads[1] is None  # steps t-2 and t-1: no gradient
    assert grads[2] is not None and grads[2].abs().sum() > 0
    assert not memory.requires_grad  # the carried state is detached


@pytest.mark.parametrize("cell", ["rtu", "gru"])
def test_tbptt_parameter_gradient_is_the_one_step_gradient(cell):
    """TBPTT(1): d out_t / dθ with h_{t-1} treated as a constant input."""
    torch.manual_seed(2)
    net = network(cell, "tbptt")
    observations = torch.randn(5, 1, OBS, dtype=torch.float64)
    memory = net.initial_memory()
    for obs in observations[:-1]:
        _, memory = net.step(obs, memory)
    h_prev = memory.clone()
    out, _ = net.step(observations[-1], memory)
    got = torch.autograd.grad(out.sum(), list(net.parameters()), allow_unused=True)
    y, _ = net.cell(net._features(observations[-1]), h_prev)
    expected = torch.autograd.grad(net._read_out(y).sum(), list(net.parameters()), allow_unused=True)
    for g, e in zip(got, expected):
        assert (g is None and e is None) or torch.allclose(g, e, rtol=1e-12, atol=1e-14)


def test_eligibility_trace_composes_with_rtrl():
    """ObGD's trace e_T = sum_t (γλ)^{T-t} ∇out_t, with RTRL gradients for the RTU, equals autograd of
    sum_t (γλ)^{T-t} out_t through the unrolled network (parameters held fixed: δ = 0)."""
    torch.manual_seed(3)
    gamma, lamda = 0.9, 0.7
    net = network("rtu", "rtrl", nonlinear=True)
    optimizer = ObGD(rtu_parameters(net), lr=1.0, gamma=gamma, lamda=lamda, kappa=2.0)
    observations = torch.randn(T, 1, OBS, dtype=torch.float64)
    weights = torch.ones(T, 1, OUT, dtype=torch.float64)
    decay = torch.tensor([(gamma * lamda) ** (T - 1 - t) for t in range(T)], dtype=torch.float64)
    expected = torch.autograd.grad(
        bptt_network_output(net, observations, decay.view(T, 1, 1) * weights), rtu_parameters(net)
    )
    before = [p.detach().clone() for p in rtu_parameters(net)]
    memory = net.initial_memory()
    for obs in observations:
        optimizer.zero_grad()
        out, memory = net.step(obs, memory)
        out.sum().backward()
        optimizer.step(torch.zeros(1, dtype=torch.float64))
    for p, b in zip(rtu_parameters(net), before):
        assert torch.equal(p.detach(), b)
    for trace, e in zip(optimizer.traces(), expected):
        assert torch.allclose(trace, e, rtol=1e-10, atol=1e-13)
