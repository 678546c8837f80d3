"""Step-size control for streaming updates: ObGD and AdaptiveObGD (Elsayed et al. 2024, docs/method.md §4).

Every parameter carries a leading population axis (P, ...); the bound is computed per member.
``p.grad`` must hold ∇f of the quantity being *ascended* (the value, the log-policy objective).

ObGD:          e ← γλ e + ∇f
               δ̄ = max(|δ|, 1),  M = α κ δ̄ ‖e‖₁,  α' = α / M if M > 1 else α
               θ ← θ + α' δ e
AdaptiveObGD:  additionally v ← β₂ v + (1 - β₂)(δ e)², v̂ = v / (1 - β₂^t), and e is replaced by
               e / (sqrt(v̂) + ε) both in ‖·‖₁ and in the update.
Traces are zeroed (after the update) for the members where ``reset`` is True.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .engines.graphs import recording


def per_member(value: Tensor, like: Tensor) -> Tensor:
    """Broadcast a (P,) tensor against a (P, ...) tensor."""
    return value.view(-1, *([1] * (like.dim() - 1)))


class ObGD(torch.optim.Optimizer):
    """All eligibility traces live in one flat (P, #params per member) buffer ``flat_trace``, each parameter's
    trace a view into it: the decay, the per-member ‖e‖₁, the reset and the update are a handful of whole-buffer
    and ``torch._foreach`` ops per step instead of several small ops per parameter (streaming steps are tiny,
    so the number of ops is the cost)."""

    def __init__(self, params, lr: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0):
        super().__init__(params, dict(lr=lr, gamma=gamma, lamda=lamda, kappa=kappa))
        self.params = [p for g in self.param_groups for p in g["params"]]
        self.flat_trace = _flat_buffer(self.params)
        self._traces = _views(self.flat_trace, self.params)
        for p, trace in zip(self.params, self._traces):
            self.state[p]["eligibility_trace"] = trace

    def _direction(self, td_error: Tensor) -> Tensor:
        """The update direction, flat: the eligibility trace itself."""
        return self.flat_trace

    @torch.no_grad()
    def step(self, td_error: Tensor, reset: Tensor | None = None, flat_grad: Tensor | None = None) -> Tensor:
        """Apply one update, then zero the traces of the members in ``reset``; returns the step size α' used by
        each member, shape (P,). The gradient is read from ``p.grad``, or given whole as ``flat_grad``
        (P, #parameters per member, in parameter order)."""
        group = self.param_groups[0]
        self.flat_trace.mul_(group["gamma"] * group["lamda"])
        if flat_grad is not None:
            self.flat_trace.add_(flat_grad)
        else:
            with_grad = [(t, p.grad) for t, p in zip(self._traces, self.params) if p.grad is not None]
            if with_grad:
                torch._foreach_add_(*map(list, zip(*with_grad)))
        step_size = bounded_step(self.params, self._direction(td_error), td_error, group["lr"], group["kappa"])
        if reset is not None:
            self.reset_traces(reset)
        return step_size

    @torch.no_grad()
    def reset_traces(self, mask: Tensor) -> None:
        """Zero the traces of the members where mask (P,) is True (most steps end no episode: then nothing; inside
        a CUDA graph the mask's value cannot be asked, so it is applied)."""
        if recording() or bool(mask.any()):
            self.flat_trace.masked_fill_(mask.view(-1, 1), 0.0)

    def traces(self) -> list[Tensor]:
        return list(self._traces)


def bounded_step(params: list[Tensor], direction: Tensor, td_error: Tensor, lr, kappa) -> Tensor:
    """ObGD's update along the flat direction d (P, N):  M = α κ max(|δ|, 1) ‖d‖₁ per member,
    α' = α / M if M > 1 else α,  θ ← θ + α' δ d;  returns α' (P,)."""
    bound = lr * kappa * td_error.abs().clamp(min=1.0) * direction.abs().sum(1)
    step_size = torch.where(bound > 1, lr / bound, lr * torch.ones_like(bound))
    scale = step_size * td_error
    torch._foreach_addcmul_(params, _views(direction, params), [per_member(scale, p) for p in params])
    return step_size


def _flat_buffer(params: list[Tensor]) -> Tensor:
    """Zeros of shape (P, Σ numel/P) for parameters that all share the leading population axis P."""
    P = params[0].shape[0]
    return params[0].new_zeros(P, sum(p.numel() // P for p in params))


def _views(flat: Tensor, params: list[Tensor]) -> list[Tensor]:
    """Consecutive column blocks of ``flat``, each viewed with its parameter's shape."""
    views, offset = [], 0
    for p in params:
        size = p.numel() // p.shape[0]
        views.append(flat[:, offset : offset + size].view(p.shape))
        offset += size
    return views


class AdaptiveObGD(ObGD):
    """ObGD whose trace is divided by sqrt of a running second moment of δe before the bound and step."""

    def __init__(
        self,
        params,
        lr: float = 1.0,
        gamma: float = 0.99,
        lamda: float = 0.8,
        kappa: float = 2.0,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ):
        super().__init__(params, lr=lr, gamma=gamma, lamda=lamda, kappa=kappa)
        for group in self.param_groups:
            group.update(beta2=beta2, eps=eps)
        self._second_moment = torch.zeros_like(self.flat_trace)
        self._count = 0

    def _direction(self, td_error: Tensor) -> Tensor:
        group = self.param_groups[0]
        self._count += 1
        delta_trace = td_error.view(-1, 1) * self.flat_trace
        self._second_moment.mul_(group["beta2"]).addcmul_(delta_trace, delta_trace, value=1 - group["beta2"])
        v_hat = self._second_moment / (1 - group["beta2"] ** self._count)
        return self.flat_trace / (v_hat.sqrt() + group["eps"])
