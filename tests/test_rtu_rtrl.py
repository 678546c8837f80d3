"""RTRL of the RTU is exact: it equals autograd through the fully unrolled recurrence (docs/method.md §2)."""

import pytest
import torch

from rtu_core.cells import RTU
from rtu_core.cells.rtu import PARAMETERS

CASES = [  # (input size, hidden size, T)
    (1, 1, 5),
    (3, 4, 50),
    (7, 16, 300),
    (16, 5, 120),
]


def unrolled_autograd_grads(cell: RTU, xs: torch.Tensor, cotangents: torch.Tensor) -> dict[str, torch.Tensor]:
    """d/dp of sum_t c_t . y_t through cell(x, h) applied T times (full BPTT)."""
    h, loss = cell.initial_hidden(), 0.0
    for x, c in zip(xs, cotangents):
        y, h = cell(x, h)
        loss = loss + (c * y).sum()
    grads = torch.autograd.grad(loss, [getattr(cell, p) for p in PARAMETERS])
    return dict(zip(PARAMETERS, grads))


def rtrl_grads(cell: RTU, xs, cotangents) -> dict[str, torch.Tensor]:
    state, total = cell.initial_rtrl_state(), {p: 0.0 for p in PARAMETERS}
    for x, c in zip(xs, cotangents):
        y, state = cell.rtrl_step(x, state)
        for name, g in cell.rtrl_grads(c, state).items():
            total[name] = total[name] + g
    return total


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
@pytest.mark.parametrize("output_activation", ["tanh", "identity"])
@pytest.mark.parametrize("d,n,T", CASES)
def test_rtrl_equals_unrolled_autograd(nonlinear, output_activation, d, n, T):
    torch.manual_seed(1000 * d + n)
    cell = RTU(d, n, nonlinear=nonlinear, output_activation=output_activation).double()
    xs = torch.randn(T, d, dtype=torch.float64)
    cotangents = torch.randn(T, cell.output_size, dtype=torch.float64)
    expected = unrolled_autograd_grads(cell, xs, cotangents)
    got = rtrl_grads(cell, xs, cotangents)
    for name in PARAMETERS:
        assert got[name].shape == getattr(cell, name).shape
        assert relative_error(got[name], expected[name]) < 1e-10, name


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
def test_backward_through_rtrl_step_gives_rtrl_grads(nonlinear):
    """Autograd through rtrl_step's output (what agents use) accumulates exactly the RTRL gradient."""
    torch.manual_seed(3)
    cell = RTU(4, 6, nonlinear=nonlinear).double()
    xs, cotangents = torch.randn(80, 4, dtype=torch.float64), torch.randn(80, 12, dtype=torch.float64)
    expected = unrolled_autograd_grads(cell, xs, cotangents)
    state = cell.initial_rtrl_state()
    for x, c in zip(xs, cotangents):
        y, state = cell.rtrl_step(x, state)
        (c * y).sum().backward()
    for name in PARAMETERS:
        assert relative_error(getattr(cell, name).grad, expected[name]) < 1e-10, name


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
def test_rtrl_input_gradient_is_one_step(nonlinear):
    """dL/dx_t through rtrl_step is the one-step Jacobian ∂y_t/∂x_t (h_{t-1} held fixed)."""
    torch.manual_seed(4)
    cell = RTU(5, 3, nonlinear=nonlinear).double()
    state = cell.initial_rtrl_state()
    for x in torch.randn(10, 5, dtype=torch.float64):
        _, state = cell.rtrl_step(x, state)
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    c = torch.randn(6, dtype=torch.float64)
    h_prev = state.features.detach()
    y, _ = cell.rtrl_step(x, state)
    (dx,) = torch.autograd.grad((c * y).sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad((c * cell(x2, h_prev)[0]).sum(), x2)
    assert relative_error(dx, expected) < 1e-12


def test_rtrl_and_autograd_paths_agree_on_values():
    torch.manual_seed(5)
    cell = RTU(3, 8, nonlinear=True).double()
    h, state = cell.initial_hidden(), cell.initial_rtrl_state()
    for x in torch.randn(50, 3, dtype=torch.float64):
        y_auto, h = cell(x, h)
        y_rtrl, state = cell.rtrl_step(x, state)
        assert torch.allclose(y_auto, y_rtrl, rtol=0, atol=1e-13)


def test_sensitivities_are_named_like_parameters_and_scale_linearly():
    d = 8
    sizes = [16, 32, 64, 128]
    counts = []
    for n in sizes:
        cell = RTU(d, n)
        state = cell.initial_rtrl_state()
        sens = state.sensitivities
        assert set(sens) == {name for name, _ in cell.named_parameters()}
        for name, p in cell.named_parameters():
            assert sens[name].shape == p.shape  # one complex sensitivity per parameter entry
        counts.append(sum(t.numel() for t in state))
        # memory = hidden state + one (complex) number per parameter: O(#params), not O(n^2 #params)
        assert counts[-1] == n + sum(p.numel() for p in cell.parameters())
    ratios = [c / n for c, n in zip(counts, sizes)]
    assert max(ratios) == pytest.approx(min(ratios))


def test_population_members_equal_solo_cells():
    """A population cell is P independent cells: member i's RTRL gradient equals the solo cell's."""
    P, d, n, T = 3, 4, 5, 40
    gens = [torch.Generator().manual_seed(s) for s in range(P)]
    pop = RTU(d, n, population=P, generators=gens).double()
    xs, cs = torch.randn(T, P, d, dtype=torch.float64), torch.randn(T, P, 2 * n, dtype=torch.float64)
    got = rtrl_grads(pop, xs, cs)
    for i in range(P):
        solo = RTU(d, n, generators=torch.Generator().manual_seed(i)).double()
        for name in PARAMETERS:
            assert torch.equal(getattr(solo, name), getattr(pop, name)[i])
        expected = rtrl_grads(solo, xs[:, i], cs[:, i])
        for name in PARAMETERS:
            assert torch.allclose(got[name][i], expected[name], rtol=1e-12, atol=1e-14)


def test_initialisation_follows_the_paper():
    torch.manual_seed(0)
    cell = RTU(64, 4096).requires_grad_(False)
    r = torch.exp(-torch.exp(cell.nu_log))
    theta = torch.exp(cell.theta_log)
    assert 0 < float(r.min()) and float(r.max()) < 1
    assert abs(float((r**2).mean()) - 0.5) < 0.02  # r² ~ U(0, 1)
    assert 0 < float(theta.min()) and float(theta.max()) <= 6.28
    assert abs(float(theta.mean()) - 3.14) < 0.1  # θ ~ U(0, 6.28)
    std = float(cell.B_real.std())
    assert abs(std - 1 / 64) < 0.1 / 64  # LeCun normal, fan_in = hidden size (flax (H, F))
    assert float(cell.B_real.abs().max()) <= 2 / 4096**0.5 / 0.87962566103423978 + 1e-6


def test_rtu_r_min_sets_the_initial_moduli_and_is_validated():
    """The docs/method.md §8 diagnostic: r² ~ U(r_min², 1), through the config down to every network's RTU."""
    import pytest

    from rtu_core import TrainConfig
    from rtu_core.config import ConfigError
    from rtu_core.training import Run

    run = Run(TrainConfig(agent="qrc", hidden_size=64, width=8, population=2, rtu_r_min=0.99))
    for net in run.agent.networks.values():
        r = net.cell.eigenvalues().abs()
        assert float(r.min()) >= 0.99 - 1e-6 and float(r.max()) < 1.0
    default = Run(TrainConfig(agent="qrc", hidden_size=64, width=8)).agent.q_net.cell.eigenvalues().abs()
    assert float(default.min()) < 0.5  # the paper's r² ~ U(0, 1)
    with pytest.raises(ConfigError, match="rtu-r-min"):
        TrainConfig(rtu_r_min=1.0)
