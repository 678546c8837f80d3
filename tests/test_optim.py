"""ObGD / AdaptiveObGD on hand-computed cases, per population member."""

import pytest
import torch

from rtu_core.optim import AdaptiveObGD, ObGD


def test_obgd_hand_computed_two_members():
    p = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=torch.float64))
    opt = ObGD([p], lr=1.0, gamma=1.0, lamda=0.5, kappa=2.0)
    # step 1: member 0 -- e = [0.5, -1], |e|_1 = 1.5, δ̄ = 2, M = 1*2*2*1.5 = 6 > 1 -> α' = 1/6
    #         member 1 -- e = [0.1, 0.1], |e|_1 = 0.2, δ̄ = 1, M = 0.4 <= 1 -> α' = 1
    p.grad = torch.tensor([[0.5, -1.0], [0.1, 0.1]], dtype=torch.float64)
    step = opt.step(torch.tensor([2.0, 0.5], dtype=torch.float64))
    assert step.tolist() == pytest.approx([1 / 6, 1.0])
    assert p.data[0].tolist() == pytest.approx([1 + 1 / 6, 2 - 1 / 3])
    assert p.data[1].tolist() == pytest.approx([0.05, 0.05])
    # step 2: member 0 -- e = 0.5*[0.5, -1] + [1, 1] = [1.25, 0.5], δ = -1, M = 2*1.75 = 3.5 -> α' = 1/3.5
    p.grad = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    before = p.data.clone()
    step = opt.step(torch.tensor([-1.0, 0.0], dtype=torch.float64), reset=torch.tensor([True, False]))
    assert step[0].item() == pytest.approx(1 / 3.5)
    assert (p.data[0] - before[0]).tolist() == pytest.approx([-1.25 / 3.5, -0.5 / 3.5])
    trace = opt.traces()[0]
    assert trace[0].tolist() == [0.0, 0.0]  # reset after the update
    assert trace[1].tolist() == pytest.approx([0.05, 0.05])  # member 1 untouched by member 0's reset


def test_obgd_update_is_bounded_by_one_over_kappa():
    """α' ≤ 1 / (κ δ̄ ‖e‖₁) gives ‖Δθ‖₁ = α' |δ| ‖e‖₁ ≤ |δ| / (κ δ̄) ≤ 1/κ, however large δ and e are."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(1, 1000))
    opt = ObGD([p], lr=1.0, gamma=0.0, lamda=0.0, kappa=2.0)
    p.grad = torch.randn(1, 1000) * 10
    before = p.data.clone()
    delta = torch.tensor([5.0])
    opt.step(delta)
    change = (p.data - before).abs().sum()
    assert float(change) == pytest.approx(1 / 2.0, rel=1e-4)  # the bound is attained: M > 1 here


def test_adaptive_obgd_first_step_by_hand():
    # e = 2, v = 0.001*(1*2)^2 = 0.004, v̂ = 4, direction = 2/(2+1e-8) ≈ 1, M = 1*2*1*1 = 2 -> α' = 0.5
    p = torch.nn.Parameter(torch.tensor([[1.0]], dtype=torch.float64))
    opt = AdaptiveObGD([p], lr=1.0, gamma=0.99, lamda=0.8, kappa=2.0)
    p.grad = torch.tensor([[2.0]], dtype=torch.float64)
    step = opt.step(torch.tensor([1.0], dtype=torch.float64))
    assert step.item() == pytest.approx(0.5, rel=1e-6)
    assert p.item() == pytest.approx(1.5, rel=1e-6)
