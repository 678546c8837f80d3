"""The paper's Taylor-corrected RTRL (§4.4, docs/method.md §3): the correction is the derivative of the sensitivity
recursion (checked by finite differences); under small parameter steps it brings the online sensitivities closer to
their replay under the current parameters than plain RTRL, and under large ones, being first-order, it does not."""

import pytest
import torch

from rtu_core.cells import RTU, TaylorRTRLState

N, D = 5, 4


def cell(nonlinear: bool, seed: int = 0) -> RTU:
    return RTU(D, N, nonlinear=nonlinear, generators=torch.Generator().manual_seed(seed)).double()


def random_state(rtu: RTU, generator: torch.Generator) -> TaylorRTRLState:
    def draw(like):
        return (
            torch.complex(
                torch.randn(like.shape, generator=generator, dtype=torch.float64),
                torch.randn(like.shape, generator=generator, dtype=torch.float64),
            )
            * 0.3
        )

    zero = rtu.initial_taylor_state()
    return TaylorRTRLState(*(draw(t) for t in zero))


def plain(state: TaylorRTRLState):
    return type(state).__mro__[2](*state[:5])  # the RTRLState part


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
def test_correction_is_the_derivative_of_the_recursion(nonlinear):
    """C_t = ∂F/∂θ · Δθ + ∂F/∂S · C_{t-1} at (θ_t, S_{t-1}), by central differences of the plain recursion F."""
    generator = torch.Generator().manual_seed(1)
    rtu = cell(nonlinear)
    state = random_state(rtu, generator)
    x = torch.randn(D, generator=generator, dtype=torch.float64)
    delta = [torch.randn(p.shape, generator=generator, dtype=torch.float64) * 0.05 for p in rtu.parameters()]
    with torch.no_grad():
        rtu._taylor_previous = tuple(p.detach() - d for p, d in zip(rtu.parameters(), delta))
    new = rtu.advance(x, state)
    plain_state = plain(state)
    expected = rtu.advance(x, plain_state)
    for got, want in zip(new[:5], expected):  # S_t is plain RTRL under θ_t
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-14)

    eps = 1e-6

    def recursion(sign: float):
        with torch.no_grad():
            for p, d in zip(rtu.parameters(), delta):
                p.add_(sign * eps * d)
        moved_params = rtu.advance(x, plain_state)
        with torch.no_grad():
            for p, d in zip(rtu.parameters(), delta):
                p.sub_(sign * eps * d)
        moved_s = rtu.advance(
            x, type(plain_state)(state.hidden, *(s + sign * eps * c for s, c in zip(state[1:5], state[5:])))
        )
        return moved_params, moved_s

    (up_p, up_s), (down_p, down_s) = recursion(+1.0), recursion(-1.0)
    for i, correction in enumerate(new[5:], start=1):
        numeric = (up_p[i] - down_p[i]) / (2 * eps) + (up_s[i] - down_s[i]) / (2 * eps)
        assert torch.allclose(correction, numeric, rtol=1e-6, atol=1e-8), i


def drifting_run(nonlinear: bool, steps: int = 40, drift: float = 2e-3, turning: bool = False):
    """Online RTRL (plain and Taylor) while every parameter moves by the same small step each time step (``turning``:
    a step of norm ``drift`` in a fresh random direction each time, as a learning agent's updates turn), and the
    replay of the same inputs under the parameters after the last move."""
    generator = torch.Generator().manual_seed(7)
    rtu = cell(nonlinear, seed=3)
    direction = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in rtu.parameters()]
    inputs = torch.randn(steps, D, generator=generator, dtype=torch.float64)
    online, taylor = rtu.initial_rtrl_state(), rtu.initial_taylor_state()
    for x in inputs:
        online, taylor = rtu.advance(x, online), rtu.advance(x, taylor)
        if turning:
            direction = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in rtu.parameters()]
            norm = torch.sqrt(sum(d.pow(2).sum() for d in direction))
            direction = [d / norm for d in direction]
        with torch.no_grad():  # the update after the step
            for p, d in zip(rtu.parameters(), direction):
                p.add_(drift * d)
    replay = rtu.initial_rtrl_state()
    for x in inputs:
        replay = rtu.advance(x, replay)

    def error(sensitivities):
        difference = torch.cat([(a - b).flatten() for a, b in zip(sensitivities, replay[1:5])])
        return float(difference.norm() / torch.cat([b.flatten() for b in replay[1:5]]).norm())

    return error(online[1:5]), error(taylor.credited_sensitivities), online, taylor


@pytest.mark.parametrize("steps", [10, 40])
@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
def test_taylor_correction_brings_sensitivities_closer_to_the_replay(nonlinear, steps):
    """Closer, but only a little (measured 5-15%): C_t adds one step's parameter change per step, while a
    contribution made k steps ago is stale by all k changes since (docs/method.md §3)."""
    plain_error, taylor_error, online, taylor = drifting_run(nonlinear, steps, drift=1e-4)
    assert plain_error > 1e-3  # the drift made plain RTRL measurably stale
    assert taylor_error < 0.97 * plain_error, (plain_error, taylor_error)
    for a, b in zip(online, taylor[:5]):  # S itself is plain RTRL either way
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
def test_under_large_parameter_steps_the_first_order_correction_overshoots(nonlinear):
    """The correction is first order in each step's Δθ: with steps of norm 0.01 in turning directions S + C is the
    closer to the replay; with steps of norm 0.5 it is the farther (as in the agent of ``benchmarks/taylor_steps.py``,
    where every actor step above 0.1 made S + C the worse)."""
    small_plain, small_taylor, _, _ = drifting_run(nonlinear, steps=20, drift=0.01, turning=True)
    assert small_taylor < 0.95 * small_plain, (small_plain, small_taylor)
    large_plain, large_taylor, _, _ = drifting_run(nonlinear, steps=20, drift=0.5, turning=True)
    assert large_taylor > 1.2 * large_plain, (large_plain, large_taylor)


def test_correction_is_zero_without_parameter_change_and_resets_with_the_episode():
    rtu = cell(False)
    state = rtu.initial_taylor_state()
    for x in torch.randn(5, D, dtype=torch.float64):
        state = rtu.advance(x, state)
    assert all(c.abs().max() == 0 for c in state[5:])
    from rtu_core.network import MemoryNetwork

    zeroed = MemoryNetwork.reset_memory(random_state(rtu, torch.Generator().manual_seed(2)), torch.tensor(True))
    assert isinstance(zeroed, TaylorRTRLState) and all(t.abs().max() == 0 for t in zeroed)
