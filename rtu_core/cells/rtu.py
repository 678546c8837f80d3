"""Recurrent Trace Unit (Elelimy et al. 2024) with exact real-time recurrent learning (``docs/method.md`` §1-2).

n complex units with eigenvalues λ = r e^{iθ}, r = exp(-exp(ν_log)), θ = exp(θ_log) and input
normaliser γ = sqrt(1 - r²). With c = (c¹, c²) = (Re h, Im h), u¹ = B_real x, u² = B_imag x:

    c¹_t = f(g c¹_{t-1} - φ c²_{t-1} + γ u¹_t),   g = r cos θ
    c²_t = f(g c²_{t-1} + φ c¹_{t-1} + γ u²_t),   φ = r sin θ
    y_t  = o([c¹_t, c²_t])

f = identity (linear RTU) or tanh (nonlinear RTU); o = tanh or identity.

Because every unit only sees its own previous pair, the sensitivity of h_t = c¹_t + i c²_t to any
parameter entry is one complex number per entry (O(#params) memory), and obeys

    S^p_t = D_t ⊙ (λ S^p_{t-1} + J^p_t)

with D_t = f'(a_t) applied to the real and imaginary parts separately, and immediate Jacobians
J^ν = (dλ/dν) h_{t-1} + (dγ/dν) u,  J^θ = (dλ/dθ_log) h_{t-1},  J^{B_real}[k,j] = γ_k x_j,
J^{B_imag}[k,j] = i γ_k x_j, where dλ/dν = -e^ν λ, dλ/dθ_log = iθλ, dγ/dν = e^ν r² / sqrt(1-r²).
The gradient of a loss L at step t is dL/dp = Re(conj(dL/dh_t) S^p_t) = dL/dc¹ Re S + dL/dc² Im S.

Two code paths share the parameters: ``forward`` is the plain real-pair recurrence for autograd
(full BPTT, or TBPTT(1) when the caller detaches the carried state), ``rtrl_step`` advances the
complex sensitivities and returns features whose backward pass yields the RTRL gradient.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..layers import Generators, matvec, member_generators, member_views, population_shape
from .scan import linear_recurrence

PARAMETERS = ("nu_log", "theta_log", "B_real", "B_imag")
INPUT_SCALE_EPS = 1e-8


class _RTRLFields(NamedTuple):
    """The fields of ``RTRLState``: h_t and one sensitivity S^p_t per RTU parameter."""

    hidden: Tensor
    nu_log: Tensor
    theta_log: Tensor
    B_real: Tensor
    B_imag: Tensor


class RTRLState(_RTRLFields):
    """Hidden state h_t (complex, (..., n)) and its sensitivities S^p_t, one per parameter, named like it."""

    @property
    def sensitivities(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in PARAMETERS}

    @property
    def credited_sensitivities(self) -> tuple[Tensor, ...]:
        """The sensitivities the gradient dL/dp = dL/dc · S^p uses (with a Taylor correction: S + C)."""
        return self[1:5]

    @property
    def features(self) -> Tensor:
        """The real pair c = [Re h, Im h] (the cell's pre-output state)."""
        return torch.cat((self.hidden.real, self.hidden.imag), dim=-1)


class _TaylorFields(NamedTuple):
    """The fields of ``TaylorRTRLState``: those of ``RTRLState`` and the Taylor corrections C^p_t."""

    hidden: Tensor
    nu_log: Tensor
    theta_log: Tensor
    B_real: Tensor
    B_imag: Tensor
    correction_nu_log: Tensor
    correction_theta_log: Tensor
    correction_B_real: Tensor
    correction_B_imag: Tensor


class TaylorRTRLState(_TaylorFields, RTRLState):
    """An RTRL state with the paper's first-order Taylor correction C of each sensitivity (§4.4,
    ``docs/method.md`` §3): S_t = F(θ_t, S_{t-1}) is plain RTRL under each step's parameters, and
    C_t = ∂F/∂S · C_{t-1} + ∂F/∂θ · Δθ_t (at S_{t-1}, Δθ_t = θ_t - θ_{t-1}); gradients use S_t + C_t."""

    @property
    def corrections(self) -> dict[str, Tensor]:
        return dict(zip(PARAMETERS, self[5:]))

    @property
    def credited_sensitivities(self) -> tuple[Tensor, ...]:
        return tuple(s + c for s, c in zip(self[1:5], self[5:]))


class _Coefficients(NamedTuple):
    """The RTU's per-unit coefficients from its parameters (r, θ, λ = r e^{iθ}, γ, and their derivatives)."""

    r: Tensor
    theta: Tensor
    lam: Tensor  # complex λ = r e^{iθ}
    input_scale: Tensor  # γ = sqrt(1 - r²) + ε, the input's scale (not the discount)
    dlam_dnu: Tensor  # complex
    dlam_dtheta: Tensor  # complex
    dinput_scale_dnu: Tensor


def rowsum_matvec(weight: Tensor, x: Tensor) -> Tensor:
    """(..., out, in) · (..., in) -> (..., out) as a broadcast product and a sum (what generated code fuses best)."""
    return (weight * x.unsqueeze(-2)).sum(-1)


class Eigen(NamedTuple):
    """The RTU's real per-unit coefficients (``eigen``); the native step computes the same six, in this order."""

    e_nu: Tensor  # e^ν
    theta: Tensor  # θ = exp(θ_log)
    g: Tensor  # Re λ = r cos θ
    phi: Tensor  # Im λ = r sin θ
    input_scale: Tensor  # γ = sqrt(1 - r²) + ε (INPUT_SCALE_EPS), the input's scale (not the discount)
    dinput_scale_dnu: Tensor  # dγ/dν = e^ν r² / sqrt(1 - r²)


def eigen(nu_log: Tensor, theta_log: Tensor) -> Eigen:
    """The RTU's real coefficients from its parameters, r = exp(-e^ν) and θ = exp(θ_log), pure tensor code: every
    path of the RTU takes its coefficients from here."""
    e_nu = torch.exp(nu_log)
    r = torch.exp(-e_nu)
    theta = torch.exp(theta_log)
    one_minus_r2 = 1 - r * r
    return Eigen(
        e_nu,
        theta,
        r * torch.cos(theta),
        r * torch.sin(theta),
        torch.sqrt(one_minus_r2) + INPUT_SCALE_EPS,
        e_nu * r * r / torch.sqrt(one_minus_r2),
    )


def _rotate(g: Tensor, phi: Tensor, re: Tensor, im: Tensor) -> tuple[Tensor, Tensor]:
    """λ z for z = re + i im, λ = g + iφ."""
    return g * re - phi * im, g * im + phi * re


def advance_pairs(params: tuple[Tensor, ...], x: Tensor, state: tuple[Tensor, ...], nonlinear: bool):
    """One RTRL step of the RTU in real pairs: ``params`` = (ν_log, θ_log, B_real, B_imag), ``state`` = (h, S^ν,
    S^θ, S^B_real, S^B_imag) each (..., 2) as (re, im). Returns the new state in the same form:

        h_t = f(λ h_{t-1} + γ u),  u = (B_real x, B_imag x)
        S^ν = D (λ S^ν + (dλ/dν) h_{t-1} + (dγ/dν) u),   dλ/dν = -e^ν λ
        S^θ = D (λ S^θ + (dλ/dθ_log) h_{t-1}),          dλ/dθ_log = iθλ
        S^B_real = D (λ S^B_real + γ x),   S^B_imag = D (λ S^B_imag + iγ x)

    with D = f'(pre-activation) on each part (1 for the linear RTU). Pure tensor code:
    and the Taylor correction differentiates it forward (``torch.func.jvp``)."""
    nu_log, theta_log, b_real, b_imag = params
    e_nu, theta, g, phi, scale, dscale = eigen(nu_log, theta_log)
    u1, u2 = rowsum_matvec(b_real, x), rowsum_matvec(b_imag, x)
    lh1, lh2 = _rotate(g, phi, *state[0].unbind(-1))
    pre1, pre2 = lh1 + scale * u1, lh2 + scale * u2
    s1, s2 = _rotate(g, phi, *state[1].unbind(-1))
    s_nu = (s1 - e_nu * lh1 + dscale * u1, s2 - e_nu * lh2 + dscale * u2)
    s1, s2 = _rotate(g, phi, *state[2].unbind(-1))
    s_theta = (s1 - theta * lh2, s2 + theta * lh1)
    gx = scale.unsqueeze(-1) * x.unsqueeze(-2)
    g_col, phi_col = g.unsqueeze(-1), phi.unsqueeze(-1)
    s1, s2 = _rotate(g_col, phi_col, *state[3].unbind(-1))
    s_b_real = (s1 + gx, s2)
    s1, s2 = _rotate(g_col, phi_col, *state[4].unbind(-1))
    s_b_imag = (s1, s2 + gx)
    sensitivities = [s_nu, s_theta, s_b_real, s_b_imag]
    if nonlinear:
        pre1, pre2 = torch.tanh(pre1), torch.tanh(pre2)
        d1, d2 = 1 - pre1.square(), 1 - pre2.square()
        sensitivities = [
            (d1 * a, d2 * b) if a.dim() == d1.dim() else (d1.unsqueeze(-1) * a, d2.unsqueeze(-1) * b)
            for a, b in sensitivities
        ]
    return tuple(torch.stack(pair, -1) for pair in [(pre1, pre2), *sensitivities])


class RTU(nn.Module):
    """Diagonal complex linear recurrence with exact RTRL; output size 2 * hidden_size."""

    checkpoint_skip = ("_cache_key", "_cache")  # the cached coefficients: computed again from the parameters

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinear: bool = False,
        *,
        output_activation: str = "tanh",
        population: int | None = None,
        generators: Generators = None,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 6.28,
    ):
        super().__init__()
        if output_activation not in ("tanh", "identity"):
            raise ValueError(f"output_activation must be 'tanh' or 'identity', got {output_activation!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.nonlinear, self.output_activation = nonlinear, output_activation
        self.population = population
        pop = population_shape(population)
        self.nu_log = nn.Parameter(torch.empty(*pop, hidden_size))
        self.theta_log = nn.Parameter(torch.empty(*pop, hidden_size))
        self.B_real = nn.Parameter(torch.empty(*pop, hidden_size, input_size))
        self.B_imag = nn.Parameter(torch.empty(*pop, hidden_size, input_size))
        self._init_parameters(member_generators(population, generators), r_min, r_max, max_phase)

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size

    @torch.no_grad()
    def _init_parameters(self, generators, r_min: float, r_max: float, max_phase: float) -> None:
        """r² ~ U(r_min², r_max²), θ ~ U(0, max_phase); B LeCun-normal (truncated) with fan_in = hidden size,
        as the paper code's flax initialiser on its (H, F) matrices."""
        n, std = self.hidden_size, 1.0 / math.sqrt(self.hidden_size) / 0.87962566103423978
        views = zip(*(member_views(p.data, self.population) for p in self.parameters()), generators)
        for nu_log, theta_log, b_real, b_imag, generator in views:
            u = torch.rand(n, generator=generator, dtype=torch.float64)
            nu_log.copy_(torch.log(-0.5 * torch.log(u * (r_max**2 - r_min**2) + r_min**2)))
            u = torch.rand(n, generator=generator, dtype=torch.float64)
            theta_log.copy_(torch.log(max_phase * u))
            for b in (b_real, b_imag):
                nn.init.trunc_normal_(b, std=std, a=-2 * std, b=2 * std, generator=generator)

    # -- shared pieces -------------------------------------------------------------------------------
    @torch.no_grad()
    def coefficients(self) -> _Coefficients:
        """λ, γ and their derivatives with respect to ν_log and θ_log (``docs/method.md`` §2), constants for autograd.

        Cached until ν_log or θ_log change (their version counters and storage): a streaming step reads them
        twice (advance, then the input gradient in backward) and the parameters only change at the update."""
        key = tuple((p.data_ptr(), p.dtype, p._version) for p in (self.nu_log, self.theta_log))
        if getattr(self, "_cache_key", None) != key:
            self._cache_key, self._cache = key, self._compute_coefficients()
        return self._cache

    def forget_coefficients(self) -> None:
        """Drop the cached coefficients: for writers the version counters do not see (a Triton kernel, a CUDA graph's
        replay) and for a CUDA graph being recorded (a cached value would not be recorded)."""
        self._cache_key = None

    def _compute_coefficients(self) -> _Coefficients:
        e_nu, theta, g, phi, scale, dscale_dnu = eigen(self.nu_log, self.theta_log)
        lam = torch.complex(g, phi)
        return _Coefficients(
            torch.exp(-e_nu),
            theta,
            lam,
            scale,
            dlam_dnu=-e_nu * lam,
            dlam_dtheta=1j * theta * lam,
            dinput_scale_dnu=dscale_dnu,
        )

    def eigenvalues(self) -> Tensor:
        """λ_k = r_k e^{iθ_k} (complex, (..., n)); memory horizon 1 / (1 - r)."""
        with torch.no_grad():
            return torch.complex(*eigen(self.nu_log, self.theta_log)[2:4])

    def _activate(self, a: Tensor) -> Tensor:
        return torch.tanh(a) if self.nonlinear else a

    def _output(self, c: Tensor) -> Tensor:
        return torch.tanh(c) if self.output_activation == "tanh" else c

    def _output_derivative(self, c: Tensor) -> Tensor:
        return 1 - torch.tanh(c) ** 2 if self.output_activation == "tanh" else torch.ones_like(c)

    def _zeros(self, *shape: int, dtype=None) -> Tensor:
        return torch.zeros(
            *population_shape(self.population), *shape, dtype=dtype or self.nu_log.dtype, device=self.nu_log.device
        )

    # -- autograd path ---------------------------------------------------------------------------------
    def initial_hidden(self) -> Tensor:
        """c_0 = 0, the real pair [c¹, c²] of shape (..., 2n)."""
        return self._zeros(2 * self.hidden_size)

    def forward(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """One step of the real-pair recurrence above; returns (y_t, c_t). Differentiable end to end; without
        gradients (bootstrapping, evaluation) it reads g, φ, γ from the cached coefficients instead."""
        if torch.is_grad_enabled():
            g, phi, scale = eigen(self.nu_log, self.theta_log)[2:5]
        else:
            k = self.coefficients()
            g = k.lam.real
            phi = k.lam.imag
            scale = k.input_scale
        c1, c2 = hidden.chunk(2, dim=-1)
        u1, u2 = matvec(self.B_real, x), matvec(self.B_imag, x)
        c1_new = self._activate(g * c1 - phi * c2 + scale * u1)
        c2_new = self._activate(g * c2 + phi * c1 + scale * u2)
        c = torch.cat((c1_new, c2_new), dim=-1)
        return self._output(c), c

    def scan(self, x: Tensor, hidden0: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        """The linear RTU over a whole sequence at once: (y, c) for inputs x (T, B, d) (for a population, B is
        the population: row p is member p's) from the carried pairs hidden0 (B, 2n), the state zeroed before
        step t where ``starts`` (T, B) is True. Differentiable end to end (BPTT through the sequence) and equal
        to T calls of ``forward``.

        In complex form h_t = a_t h_{t-1} + b_t with a_t = λ (0 at an episode start) and b_t = γ u_t: a linear
        recurrence, computed by ``scan.linear_recurrence`` in log₂ T whole-sequence rounds instead of T steps."""
        if self.nonlinear:
            raise ValueError("the scan needs the linear RTU: tanh inside the recurrence does not compose")
        g, phi, scale = eigen(self.nu_log, self.theta_log)[2:5]
        lam = torch.complex(g, phi)
        if self.B_real.dim() == 2:  # one network: u = x Bᵀ as one matrix product over the whole sequence
            u1, u2 = x @ self.B_real.T, x @ self.B_imag.T
        else:  # a population: member p's B acts on x[:, p]
            u1, u2 = matvec(self.B_real, x), matvec(self.B_imag, x)
        b = torch.complex(u1, u2) * scale
        a = lam * (~starts).unsqueeze(-1).to(x.dtype)
        c1, c2 = hidden0.chunk(2, dim=-1)
        h = linear_recurrence(a, b, torch.complex(c1, c2))
        c = torch.cat((h.real, h.imag), dim=-1)
        return self._output(c), c

    # -- RTRL path -----------------------------------------------------------------------------------
    def initial_rtrl_state(self) -> RTRLState:
        """h_0 = 0 and S_0 = 0 for every parameter."""
        complex_dtype = torch.complex128 if self.nu_log.dtype == torch.float64 else torch.complex64
        n, d = self.hidden_size, self.input_size
        return RTRLState(
            self._zeros(n, dtype=complex_dtype),
            self._zeros(n, dtype=complex_dtype),
            self._zeros(n, dtype=complex_dtype),
            self._zeros(n, d, dtype=complex_dtype),
            self._zeros(n, d, dtype=complex_dtype),
        )

    def initial_taylor_state(self) -> TaylorRTRLState:
        """h_0 = 0, S_0 = 0 and C_0 = 0 (RTRL with the Taylor correction)."""
        state = self.initial_rtrl_state()
        return TaylorRTRLState(*state, *(torch.zeros_like(s) for s in state[1:]))

    @torch.no_grad()
    def advance(self, x: Tensor, state: RTRLState) -> RTRLState:
        """h_t = f(λ h_{t-1} + γ u_t) and S^p_t = D_t ⊙ (λ S^p_{t-1} + J^p_t); returns new tensors (of the
        state's kind: a ``TaylorRTRLState`` also advances its correction)."""
        if isinstance(state, TaylorRTRLState):
            return self._advance_taylor(x, state)
        k = self.coefficients()
        x = x.detach()
        u = torch.complex(matvec(self.B_real, x), matvec(self.B_imag, x))
        h_prev = state.hidden
        pre = k.lam * h_prev + k.input_scale * u
        s_nu = k.lam * state.nu_log + k.dlam_dnu * h_prev + k.dinput_scale_dnu * u
        s_theta = k.lam * state.theta_log + k.dlam_dtheta * h_prev
        # S^B = λ S^B + γ x, γ x added in place to the real part (B_real) or the imaginary part (B_imag): never
        # promoted to a complex (n, d) tensor of its own (the B blocks are nearly all of the state)
        lam_col, scaled_x = k.lam.unsqueeze(-1), k.input_scale.unsqueeze(-1) * x.unsqueeze(-2)
        s_b_real, s_b_imag = lam_col * state.B_real, lam_col * state.B_imag
        torch.view_as_real(s_b_real)[..., 0].add_(scaled_x)
        torch.view_as_real(s_b_imag)[..., 1].add_(scaled_x)
        if not self.nonlinear:
            return RTRLState(pre, s_nu, s_theta, s_b_real, s_b_imag)
        hidden = torch.complex(torch.tanh(pre.real), torch.tanh(pre.imag))
        d_real, d_imag = 1 - hidden.real**2, 1 - hidden.imag**2

        def scale(s: Tensor) -> Tensor:  # D_t ⊙ s on the real and imaginary parts separately
            if s.dim() > d_real.dim():
                return torch.complex(d_real.unsqueeze(-1) * s.real, d_imag.unsqueeze(-1) * s.imag)
            return torch.complex(d_real * s.real, d_imag * s.imag)

        return RTRLState(hidden, scale(s_nu), scale(s_theta), scale(s_b_real), scale(s_b_imag))

    @torch.no_grad()
    def _advance_taylor(self, x: Tensor, state: TaylorRTRLState) -> TaylorRTRLState:
        """(h_t, S_t) = F(θ_t; h_{t-1}, S_{t-1}, x_t) and C_t = ∂F/∂S · C_{t-1} + ∂F/∂θ · Δθ_t, evaluated at
        (θ_t, S_{t-1}) as one forward-mode derivative of ``advance_pairs`` along (Δθ_t, C_{t-1}).

        Δθ_t = θ_t - θ_{t-1} is the change of the RTU's parameters since its previous advance (zero at the first);
        the carry h_{t-1} and the input x_t are held fixed."""
        params = tuple(p.detach() for p in self.parameters())
        previous = getattr(self, "_taylor_previous", None)
        delta = (
            tuple(torch.zeros_like(p) for p in params)
            if previous is None or any(a.shape != b.shape for a, b in zip(previous, params))
            else tuple(p - q for p, q in zip(params, previous))
        )
        self._taylor_previous = tuple(p.clone() for p in params)
        state_pairs = tuple(torch.view_as_real(t) for t in state[:5])
        # the hidden state's tangent is zero: the carry is not corrected (the paper's method)
        tangents = (torch.zeros_like(state_pairs[0]), *(torch.view_as_real(c) for c in state[5:]))
        new_pairs, correction_pairs = torch.func.jvp(
            lambda p, s: advance_pairs(p, x.detach(), s, self.nonlinear), (params, state_pairs), (delta, tangents)
        )
        complex_of = torch.view_as_complex
        return TaylorRTRLState(
            *(complex_of(t.contiguous()) for t in new_pairs),
            *(complex_of(t.contiguous()) for t in correction_pairs[1:]),
        )

    def rtrl_step(self, x: Tensor, state: RTRLState) -> tuple[Tensor, RTRLState]:
        """Advance the RTRL state by one step and return (y_t, state_t).

        y_t carries an autograd graph of one step only: backpropagating dL/dy_t into it gives the
        exact RTRL gradient dL/dy_t · dy_t/dp for the RTU parameters and the one-step gradient
        dL/dx_t for whatever produced x_t. No graph is kept across steps."""
        new_state = self.advance(x, state)
        c = _RTRLCredit.apply(x, self.nu_log, self.theta_log, self.B_real, self.B_imag, self, new_state)
        return self._output(c), new_state

    def rtrl_grads(self, dy: Tensor, state: RTRLState) -> dict[str, Tensor]:
        """{parameter name: dy · dy_t/dp}, shaped like the parameter, for the output y_t of ``state``."""
        with torch.no_grad():
            dc = dy * self._output_derivative(state.features)
            return dict(zip(PARAMETERS, self._parameter_grads(dc, state)))

    def _parameter_grads(self, dc: Tensor, state: RTRLState) -> tuple[Tensor, ...]:
        """dL/dp = dL/dc¹ Re S^p + dL/dc² Im S^p for every parameter (S + C with a Taylor correction)."""
        dc1, dc2 = dc.chunk(2, dim=-1)
        s_nu, s_theta, s_b_real, s_b_imag = state.credited_sensitivities
        grads = [dc1 * s_nu.real + dc2 * s_nu.imag, dc1 * s_theta.real + dc2 * s_theta.imag]
        dc1, dc2 = dc1.unsqueeze(-1), dc2.unsqueeze(-1)
        grads += [dc1 * s.real + dc2 * s.imag for s in (s_b_real, s_b_imag)]
        return tuple(grads)

    def _input_grad(self, dc: Tensor, state: RTRLState) -> Tensor:
        """One-step dL/dx_t = B_realᵀ (γ D¹ dc¹) + B_imagᵀ (γ D² dc²)."""
        dc1, dc2 = dc.chunk(2, dim=-1)
        if self.nonlinear:
            dc1, dc2 = dc1 * (1 - state.hidden.real**2), dc2 * (1 - state.hidden.imag**2)
        scale = self.coefficients().input_scale
        return matvec(self.B_real.transpose(-1, -2), scale * dc1) + matvec(self.B_imag.transpose(-1, -2), scale * dc2)

    def extra_repr(self) -> str:
        kind = "nonlinear" if self.nonlinear else "linear"
        return (
            f"{self.input_size}, {self.hidden_size}, {kind}, output={self.output_activation}, "
            f"population={self.population}"
        )


class _RTRLCredit(torch.autograd.Function):
    """Identity on the values c_t = state.features; its backward assigns RTRL credit.

    Backward: dL/dp = Σ_pair dL/dc_t · S^p_t (exact RTRL), dL/dx_t through the current step only."""

    @staticmethod
    def forward(ctx, x, nu_log, theta_log, b_real, b_imag, cell: RTU, state: RTRLState):
        ctx.cell, ctx.state = cell, state
        return state.features

    @staticmethod
    def backward(ctx, dc):
        cell, state = ctx.cell, ctx.state
        grads = cell._parameter_grads(dc, state)
        dx = cell._input_grad(dc, state) if ctx.needs_input_grad[0] else None
        return (dx, *grads, None, None)
