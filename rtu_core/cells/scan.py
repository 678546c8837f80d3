"""The diagonal linear recurrence h_t = a_t ⊙ h_{t-1} + b_t over a whole sequence, by parallel prefix scans.

The pairs (a, b) compose associatively, (a, b) ∘ (a', b') = (a a', a b' + b) (apply (a', b') first), so the
inclusive prefixes (A_t, B_t) of the sequence give every state at once: h_t = A_t h_{-1} + B_t. Hillis-Steele
computes them in ⌈log₂ T⌉ rounds of whole-sequence operations instead of T dependent steps -- what makes an
unroll of the linear RTU cheap in eager PyTorch, where the cost of a step is its number of operations.

The backward pass is the adjoint recurrence, run backwards in time by the same scan (PyTorch's convention for
complex gradients, ∂L/∂z̄):

    ḡ_t = g_t + ā_{t+1} ḡ_{t+1},   ∂L/∂b_t = ḡ_t,   ∂L/∂a_t = ḡ_t h̄_{t-1},   ∂L/∂h_{-1} = ā_0 ḡ_0
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def prefix_scan(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Inclusive prefixes (A_t, B_t) along axis 0 of h_t = a_t h_{t-1} + b_t: A_t = a_t ⋯ a_0 and B_t = h_t from
    h_{-1} = 0. New tensors; no autograd graph."""
    a, b = a.clone(), b.clone()
    shift = 1
    while shift < len(a):
        # right-hand sides are computed before the in-place writes read the (overlapping) earlier rows
        b[shift:] += a[shift:] * b[:-shift]
        a[shift:] *= a[:-shift].clone()
        shift *= 2
    return a, b


class LinearRecurrence(torch.autograd.Function):
    """h = (h_0 … h_{T-1}) of h_t = a_t ⊙ h_{t-1} + b_t from h_{-1} (module docstring), differentiable."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h_init: Tensor) -> Tensor:
        prefix_a, prefix_b = prefix_scan(a, b)
        h = prefix_b + prefix_a * h_init
        ctx.save_for_backward(a, h, h_init)
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, h, h_init = ctx.saved_tensors
        # the adjoint runs backwards in time with coefficient ā_{t+1}: as a forward scan of the flipped sequence
        coefficient = torch.cat((a[1:].conj(), torch.zeros_like(a[:1])))
        grad_b = prefix_scan(coefficient.flip(0), grad_h.flip(0))[1].flip(0)
        h_prev = torch.cat((h_init.expand_as(h[:1]), h[:-1]))
        grad_a = grad_b * h_prev.conj()
        grad_init = (grad_b[0] * a[0].conj()).sum_to_size(h_init.shape)
        return grad_a, grad_b, grad_init


def linear_recurrence(a: Tensor, b: Tensor, h_init: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for t = 0 … T-1 (axis 0), from h_{-1} = ``h_init``; a and b (T, ...) alike."""
    return LinearRecurrence.apply(a, b, h_init)
