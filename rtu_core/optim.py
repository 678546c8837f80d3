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
    def __init__(self, params, lr: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0):
        super().__init__(params, dict(lr=lr, gamma=gamma, lamda=lamda, kappa=kappa))

    def _direction(self, p: Tensor, state: dict, td_error: Tensor, group: dict) -> Tensor:
        return state["eligibility_trace"]

    @torch.no_grad()
    def step(self, td_error: Tensor, reset: Tensor | None = None) -> Tensor:
        """Apply one update; returns the step size α' used by each member, shape (P,)."""
        l1, updates = torch.zeros_like(td_error), []
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["eligibility_trace"] = torch.zeros_like(p)
                trace = state["eligibility_trace"]
                trace.mul_(group["gamma"] * group["lamda"])
                if p.grad is not None:
                    trace.add_(p.grad)
                direction = self._direction(p, state, td_error, group)
                l1 += direction.abs().flatten(1).sum(1)
                updates.append((p, direction, group))
        group = self.param_groups[0]
        bound = group["lr"] * group["kappa"] * td_error.abs().clamp(min=1.0) * l1
        step_size = torch.where(bound > 1, group["lr"] / bound, torch.full_like(bound, group["lr"]))
        for p, direction, _ in updates:
            p.add_(per_member(step_size * td_error, p) * direction)
            if reset is not None:
                self.state[p]["eligibility_trace"].masked_fill_(per_member(reset, p), 0.0)
        return step_size

    def traces(self) -> list[Tensor]:
        return [self.state[p]["eligibility_trace"] for g in self.param_groups for p in g["params"]
                if "eligibility_trace" in self.state[p]]


class AdaptiveObGD(ObGD):
    def __init__(self, params, lr: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0,
                 beta2: float = 0.999, eps: float = 1e-8):
        torch.optim.Optimizer.__init__(self, params, dict(lr=lr, gamma=gamma, lamda=lamda, kappa=kappa,
                                                          beta2=beta2, eps=eps))

    def _direction(self, p: Tensor, state: dict, td_error: Tensor, group: dict) -> Tensor:
        trace = state["eligibility_trace"]
        if "second_moment" not in state:
            state["second_moment"], state["count"] = torch.zeros_like(p), 0
        state["count"] += 1
        delta_trace = per_member(td_error, p) * trace
        state["second_moment"].mul_(group["beta2"]).addcmul_(delta_trace, delta_trace, value=1 - group["beta2"])
        v_hat = state["second_moment"] / (1 - group["beta2"] ** state["count"])
        return trace / (v_hat.sqrt() + group["eps"])
