"""The Stream AC(λ) step of RTU-RTRL networks as two ``torch.compile``d graphs (``TrainConfig.compile``).

A streaming step runs a few hundred tiny tensor operations, so in eager PyTorch its cost is the per-operation
dispatch, not the arithmetic. Compiled, each half of the step is one call into generated C++:

    act graph     both networks:  x = f(LayerNorm(W_f o_t + b_f)),  RTRL advance (below),  out = W_o tanh(c_t) + b_o
    learn graph   V(o_{t+1}) by the plain recurrence from c_t;  δ_t = r_t + γ (1 - terminal) V(o_{t+1}) - V(o_t);
                  g = d[log π(a_t) + η sign(δ_t) H]/d out (actor), 1 (critic);  every p.grad by ``rtu_core.fused``'s
                  hand-written backward (exact RTRL for the RTU parameters);  e ← γλ e + ∇,  θ ← θ + α' δ e  (ObGD)

The act graph also draws a_t; the learn graph ends with the eligibility-trace update and ObGD's own
``optim.bounded_step``, so one streaming step is two calls into generated code.
TorchInductor generates no code for complex tensors, so here the RTU's complex numbers are real pairs (re, im):
with λ = g + iφ and u = (B_real x, B_imag x),

    h_t   = λ h_{t-1} + γ u                                  (tanh on each part for the nonlinear RTU, D = 1 - h_t²)
    S^ν   = λ S^ν + (dλ/dν) h_{t-1} + (dγ/dν) u,   dλ/dν = -e^ν λ,   dγ/dν = e^ν r² / sqrt(1 - r²)
    S^θ   = λ S^θ + (dλ/dθ_log) h_{t-1},           dλ/dθ_log = iθλ
    S^B_real = λ S^B_real + γ x,   S^B_imag = λ S^B_imag + iγ x            (each times D when nonlinear)

(``docs/method.md`` §2) — the same equations as ``RTU.advance`` and ``fused.backward``, which this module is tested
against
in float64. The agent's RTRL state stays complex: the graphs read and write it through ``torch.view_as_real``.
Compiling takes seconds per network shape and dtype (cached by TorchInductor across processes), so it pays off
for long headless runs and sweeps; the lab and the tests' short runs use the eager path. Runs stay deterministic,
but a population member equals its solo run only up to float rounding (eager: bit for bit), since the generated
kernels depend on the population's shape.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .agents.policy import categorical, categorical_grad, gaussian, gaussian_grads
from .cells import RTRLState
from .cells.rtu import _rotate, advance_pairs, eigen
from .cells.rtu import rowsum_matvec as _matvec
from .fused import LEAKY_SLOPE, LN_EPS, activation_derivative
from .network import MemoryNetwork
from .optim import ObGD, bounded_step

Params = tuple[Tensor, ...]  # W_f, b_f, ν_log, θ_log, B_real, B_imag, W_o, b_o (MemoryNetwork.parameters() order)
Pairs = tuple[Tensor, ...]  # h, S^ν, S^θ, S^B_real, S^B_imag as (..., 2) real pairs


def _features(params: Params, obs: Tensor, activation: str) -> tuple[Tensor, Tensor, Tensor]:
    """(normed, 1/σ, x): x = f(n), n = LayerNorm(W_f o + b_f) without affine parameters."""
    a = _matvec(params[0], obs) + params[1]
    centred = a - a.mean(-1, keepdim=True)
    inv_std = torch.rsqrt(centred.square().mean(-1, keepdim=True) + LN_EPS)
    normed = centred * inv_std
    if activation == "leaky_relu":
        return normed, inv_std, torch.where(normed > 0, normed, LEAKY_SLOPE * normed)
    return normed, inv_std, torch.tanh(normed) if activation == "tanh" else torch.relu(normed)


def _head(params: Params, c: Tensor) -> tuple[Tensor, Tensor]:
    y = torch.tanh(c)
    return _matvec(params[6], y) + params[7], y


def _network_forward(params: Params, obs: Tensor, state: Pairs, activation: str, nonlinear: bool):
    """(out_t, state_t as real pairs, tape) from o_t and the state of step t-1."""
    normed, inv_std, x = _features(params, obs, activation)
    new_state = advance_pairs(params[2:6], x, state, nonlinear)
    out, y = _head(params, torch.cat(new_state[0].unbind(-1), -1))  # c = [Re h, Im h]
    return out, new_state, (obs, normed, inv_std, y)


def _network_backward(
    params: Params, tape, state: Pairs, grad_out: Tensor, activation: str, nonlinear: bool
) -> list[Tensor]:
    """d(grad_out · out_t)/dp for every parameter, in ``Params`` order (``fused.backward`` in real pairs)."""
    obs, normed, inv_std, y = tape
    dc = _matvec(params[6].transpose(-1, -2), grad_out) * (1 - y.square())
    dc1, dc2 = dc.chunk(2, -1)
    grads = []
    for s in state[1:3]:
        grads.append(dc1 * s[..., 0] + dc2 * s[..., 1])
    for s in state[3:]:
        grads.append(dc1.unsqueeze(-1) * s[..., 0] + dc2.unsqueeze(-1) * s[..., 1])
    if nonlinear:
        dc1, dc2 = dc1 * (1 - state[0][..., 0].square()), dc2 * (1 - state[0][..., 1].square())
    scale = eigen(params[2], params[3])[4]  # the RTU's input scale γ (not the discount)
    dx = _matvec(params[4].transpose(-1, -2), scale * dc1) + _matvec(params[5].transpose(-1, -2), scale * dc2)
    dn = dx * activation_derivative(activation, normed)
    da = (dn - dn.mean(-1, keepdim=True) - normed * (dn * normed).mean(-1, keepdim=True)) * inv_std
    feature = [da.unsqueeze(-1) * obs.unsqueeze(-2), da]
    head = [grad_out.unsqueeze(-1) * y.unsqueeze(-2), grad_out]
    return feature + grads + head


def _next_value(params: Params, next_obs: Tensor, hidden: Tensor, activation: str, nonlinear: bool) -> Tensor:
    """V(o_{t+1}) (P,) by the plain recurrence from h_t, without advancing anything."""
    x = _features(params, next_obs, activation)[2]
    _, _, g, phi, scale, _ = eigen(params[2], params[3])
    lh1, lh2 = _rotate(g, phi, *hidden.unbind(-1))
    c1, c2 = lh1 + scale * _matvec(params[4], x), lh2 + scale * _matvec(params[5], x)
    if nonlinear:
        c1, c2 = torch.tanh(c1), torch.tanh(c2)
    return _head(params, torch.cat((c1, c2), -1))[0].squeeze(-1)


def as_pairs(memory: RTRLState) -> Pairs:
    return tuple(torch.view_as_real(t) for t in memory[:5])


def from_pairs(pairs: Pairs) -> RTRLState:
    return RTRLState(*(torch.view_as_complex(t) for t in pairs))


class CompiledStreamACStep:
    """The act and learn graphs of one Stream AC agent whose actor and critic are ``fused.supports`` networks.

    The graphs see only tensors and a few settings (``discrete``, activation, nonlinear), never the agent's
    objects, so agents of equal shapes share one compiled graph (torch.compile caches per code and guards)."""

    def __init__(
        self,
        actor: MemoryNetwork,
        critic: MemoryNetwork,
        discrete: bool,
        actor_optimizer: ObGD,
        critic_optimizer: ObGD,
        gamma: float,
        entropy_coeff: float,
    ):
        activation, nonlinear = actor.activation_name, actor.cell.nonlinear
        # parameters and traces are updated in place, so these stay valid for the agent's life
        self.actor_params, self.critic_params = tuple(actor.parameters()), tuple(critic.parameters())
        self.optimizers = (
            (tuple(actor_optimizer.params), actor_optimizer.flat_trace),
            (tuple(critic_optimizer.params), critic_optimizer.flat_trace),
        )
        dtype = actor_optimizer.flat_trace.dtype

        def setting(value: float) -> Tensor:  # a tensor, not a Python float: no recompiling for another value
            return torch.tensor(value, dtype=dtype)

        group, critic_group = actor_optimizer.param_groups[0], critic_optimizer.param_groups[0]
        self.settings = tuple(
            map(
                setting,
                (
                    gamma,
                    entropy_coeff,
                    group["gamma"] * group["lamda"],
                    group["lr"],
                    group["kappa"],
                    critic_group["kappa"],
                ),
            )
        )

        def act(actor_params, critic_params, log_std, obs, actor_state, critic_state, noise):
            out, actor_state, actor_tape = _network_forward(actor_params, obs, actor_state, activation, nonlinear)
            value, critic_state, critic_tape = _network_forward(critic_params, obs, critic_state, activation, nonlinear)
            action = categorical(out, noise)[0] if discrete else gaussian(out, log_std, noise)[0]
            return action, out, value.squeeze(-1), actor_state, critic_state, actor_tape, critic_tape

        def learn(
            actor_params,
            critic_params,
            optimizers,
            settings,
            log_std,
            actor_tape,
            critic_tape,
            actor_state,
            critic_state,
            out,
            action,
            value,
            reward,
            next_obs,
            terminated,
        ):
            gamma, entropy_coeff, trace_decay, lr, kappa_actor, kappa_critic = settings
            next_value = _next_value(critic_params, next_obs, critic_state[0], activation, nonlinear)
            td_error = reward + gamma * next_value * (~terminated) - value
            coeff = entropy_coeff * td_error.sign()
            if discrete:
                grad_out, log_std_grad = categorical_grad(out, action, coeff), []
            else:
                grad_out, log_std_grad = gaussian_grads(out, log_std, action, coeff)
                log_std_grad = [log_std_grad]
            grads = (
                _network_backward(actor_params, actor_tape, actor_state, grad_out, activation, nonlinear)
                + log_std_grad,
                _network_backward(
                    critic_params,
                    critic_tape,
                    critic_state,
                    torch.ones_like(value).unsqueeze(-1),
                    activation,
                    nonlinear,
                ),
            )
            for (params, trace), grad, kappa in zip(optimizers, grads, (kappa_actor, kappa_critic)):
                trace.mul_(trace_decay).add_(torch.cat([g.flatten(1) for g in grad], dim=1))  # e ← γλ e + ∇
                bounded_step(list(params), trace, td_error, lr, kappa)
            return td_error

        # one graph per network shape, dtype and setting: a sweep or benchmark process meets more than torch's
        # default of 8 per function, and with fullgraph=True hitting that limit is an error
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 128)
        self._act = torch.compile(act, dynamic=False, fullgraph=True)
        self._learn = torch.compile(learn, dynamic=False, fullgraph=True)

    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        actor_memory: RTRLState,
        critic_memory: RTRLState,
        noise: Tensor | None,
        log_std: Tensor | None,
    ):
        """(a_t, out_t, V(o_t), actor memory_t, critic memory_t, tape for ``learn``); a_t is drawn with
        ``noise`` (uniform for a categorical policy, standard normal for a Gaussian one; None: greedy)."""
        action, out, value, actor_state, critic_state, actor_tape, critic_tape = self._act(
            self.actor_params, self.critic_params, log_std, obs, as_pairs(actor_memory), as_pairs(critic_memory), noise
        )
        return action, out, value, from_pairs(actor_state), from_pairs(critic_state), (actor_tape, critic_tape)

    @torch.no_grad()
    def learn(
        self,
        tape,
        actor_memory: RTRLState,
        critic_memory: RTRLState,
        out: Tensor,
        action: Tensor,
        value: Tensor,
        reward: Tensor,
        next_obs: Tensor,
        terminated: Tensor,
        log_std: Tensor | None,
    ) -> Tensor:
        """One update of both networks and their eligibility traces (the optimisers' traces are not reset here:
        ``ObGD.reset_traces``); returns δ_t."""
        return self._learn(
            self.actor_params,
            self.critic_params,
            self.optimizers,
            self.settings,
            log_std,
            *tape,
            as_pairs(actor_memory),
            as_pairs(critic_memory),
            out,
            action,
            value,
            reward,
            next_obs,
            terminated,
        )
