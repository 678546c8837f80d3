"""Step-size control for streaming updates: ObGD and AdaptiveObGD (Elsayed et al. 2024, SPEC.md §4).

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


def per_member(value: Tensor, like: Tensor) -> Tensor:
    """Broadcast a (P,) tensor against a (P, ...) tensor."""
    return value.view(-1, *([1] * (like.dim() - 1)))


class ObGD(torch.optim.Optimizer):
    """All eligibility traces live in one flat (P, #params per member) buffer, each parameter's trace a view
    into it: the decay, the per-member ‖e‖₁, the reset and the update are a handful of whole-buffer and
    ``torch._foreach`` ops per step instead of several small ops per parameter (streaming steps are tiny, so
    the number of ops is the cost)."""

    def __init__(self, params, lr: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0):
        super().__init__(params, dict(lr=lr, gamma=gamma, lamda=lamda, kappa=kappa))
        self._params = [p for g in self.param_groups for p in g["params"]]
        self._flat = _flat_buffer(self._params)
        self._traces = _views(self._flat, self._params)
        for p, trace in zip(self._params, self._traces):
            self.state[p]["eligibility_trace"] = trace

    def _direction(self, td_error: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The update direction, flat and per parameter: the eligibility trace itself."""
        return self._flat, self._traces

    @torch.no_grad()
    def step(self, td_error: Tensor, reset: Tensor | None = None) -> Tensor:
        """Apply one update; returns the step size α' used by each member, shape (P,)."""
        group = self.param_groups[0]
        self._flat.mul_(group["gamma"] * group["lamda"])
        with_grad = [(t, p.grad) for t, p in zip(self._traces, self._params) if p.grad is not None]
        if with_grad:
            torch._foreach_add_(*map(list, zip(*with_grad)))
        flat, direction = self._direction(td_error)
        l1 = flat.abs().sum(1)
        bound = group["lr"] * group["kappa"] * td_error.abs().clamp(min=1.0) * l1
        step_size = torch.where(bound > 1, group["lr"] / bound, torch.full_like(bound, group["lr"]))
        scale = step_size * td_error
        torch._foreach_addcmul_(self._params, direction, [per_member(scale, p) for p in self._params])
        if reset is not None and bool(reset.any()):
            self._flat.masked_fill_(reset.view(-1, 1), 0.0)
        return step_size

    def traces(self) -> list[Tensor]:
        return list(self._traces)


def _flat_buffer(params: list[Tensor]) -> Tensor:
    """Zeros of shape (P, Σ numel/P) for parameters that all share the leading population axis P."""
    P = params[0].shape[0]
    return params[0].new_zeros(P, sum(p.numel() // P for p in params))


def _views(flat: Tensor, params: list[Tensor]) -> list[Tensor]:
    """Consecutive column blocks of ``flat``, each viewed with its parameter's shape."""
    views, offset = [], 0
    for p in params:
        size = p.numel() // p.shape[0]
        views.append(flat[:, offset:offset + size].view(p.shape))
        offset += size
    return views


class AdaptiveObGD(ObGD):
    def __init__(self, params, lr: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0,
                 beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(params, lr=lr, gamma=gamma, lamda=lamda, kappa=kappa)
        for group in self.param_groups:
            group.update(beta2=beta2, eps=eps)
        self._second_moment = torch.zeros_like(self._flat)
        self._count = 0

    def _direction(self, td_error: Tensor) -> tuple[Tensor, list[Tensor]]:
        group = self.param_groups[0]
        self._count += 1
        delta_trace = td_error.view(-1, 1) * self._flat
        self._second_moment.mul_(group["beta2"]).addcmul_(delta_trace, delta_trace, value=1 - group["beta2"])
        v_hat = self._second_moment / (1 - group["beta2"] ** self._count)
        direction = self._flat / (v_hat.sqrt() + group["eps"])
        return direction, _views(direction, self._params)
