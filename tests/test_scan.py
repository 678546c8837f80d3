"""The linear recurrence by parallel prefix scans (rtu_core/cells/scan.py) and the RTU's sequence unroll built on
it: equal to the step-by-step recurrence, values and gradients, in float64."""

import pytest
import torch

from rtu_core.cells import RTU
from rtu_core.cells.scan import linear_recurrence, prefix_scan
from rtu_core.network import MemoryNetwork


def stepwise(a, b, h_init):
    h, states = h_init, []
    for a_t, b_t in zip(a, b):
        h = a_t * h + b_t
        states.append(h)
    return torch.stack(states)


@pytest.mark.parametrize("T", [1, 2, 3, 8, 13, 64])
def test_linear_recurrence_equals_the_loop_and_its_adjoint_passes_gradcheck(T):
    torch.manual_seed(T)
    a = (0.9 * torch.randn(T, 2, 3, dtype=torch.complex128)).requires_grad_()
    b = torch.randn(T, 2, 3, dtype=torch.complex128, requires_grad=True)
    h_init = torch.randn(2, 3, dtype=torch.complex128, requires_grad=True)
    assert torch.allclose(linear_recurrence(a, b, h_init), stepwise(a, b, h_init), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(linear_recurrence, (a, b, h_init))
    # the prefix products A_t = a_t ⋯ a_0
    assert torch.allclose(prefix_scan(a, b)[0][-1], a.detach().prod(0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("population", [None, 3])  # a stacked RTU: member p acts on batch row p
@pytest.mark.parametrize("output_activation", ["tanh", "identity"])
def test_rtu_scan_equals_its_stepwise_forward_with_episode_starts(output_activation, population):
    torch.manual_seed(0)
    cell = RTU(5, 4, output_activation=output_activation, population=population).double()
    T = 11
    x = torch.randn(T, 3, 5, dtype=torch.float64, requires_grad=True)
    starts = torch.zeros(T, 3, dtype=torch.bool)
    starts[0, 0] = starts[4, 1] = starts[7, 1] = True  # episodes begin inside the sequences
    hidden0 = torch.randn(3, 8, dtype=torch.float64)
    y, c = cell.scan(x, hidden0, starts)
    memory, ys = hidden0, []
    for t in range(T):
        y_t, memory = cell(x[t], MemoryNetwork.reset_memory(memory, starts[t]))
        ys.append(y_t)
    assert torch.allclose(y, torch.stack(ys), rtol=1e-12, atol=1e-13)
    assert torch.allclose(c[-1], memory, rtol=1e-12, atol=1e-13)
    weights = torch.randn_like(y)
    inputs = [x, *cell.parameters()]
    scanned = torch.autograd.grad((y * weights).sum(), inputs)
    looped = torch.autograd.grad((torch.stack(ys) * weights).sum(), inputs)
    for name, g_scan, g_loop in zip(["x", "nu_log", "theta_log", "B_real", "B_imag"], scanned, looped):
        assert torch.allclose(g_scan, g_loop, rtol=1e-10, atol=1e-12), name


def test_scan_refuses_the_nonlinear_rtu():
    cell = RTU(2, 3, nonlinear=True)
    with pytest.raises(ValueError, match="linear RTU"):
        cell.scan(torch.zeros(4, 1, 2), torch.zeros(1, 6), torch.zeros(4, 1, dtype=torch.bool))
