"""GPU kernels (Triton) for the streaming step where the eager one makes many passes over the same tensors.

QRC(λ)'s update of one network, on its flat (P, N) buffers (``docs/method.md`` §4; the equations of
``rtu_core.agents.qrc``), in one pass that reads g, g′, z and θ once and writes z and θ once, where the eager step
makes about a dozen full-size passes:

    z ← γλ z + g
    Q:  u = -b (γ c g′ - g) + δ z - h g        (c = 1 - terminal, g′ = ∇Q(o′, a*))
    h:  u = δ z - h g - β θ
    θ ← θ + α u,   then z ← 0 for the members whose trace is cut

Each element is computed by the eager step's own float operations in its order, with fused multiply-adds switched
off, so the numbers are the eager step's bit for bit. Triton comes with CUDA builds of torch; where it is missing
(a CPU-only install) ``available()`` is False and the agents keep their eager update.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install
    triton = None

BLOCK = 1024


def available(device: torch.device | str) -> bool:
    """Whether the kernels run on ``device`` (a CUDA device with Triton)."""
    return triton is not None and torch.device(device).type == "cuda"


if triton is not None:

    @triton.jit
    def _qrc_update_kernel(
        param_ptr,
        trace_ptr,
        grad_ptr,
        next_grad_ptr,
        bias_ptr,
        td_ptr,
        h_ptr,
        continuing_ptr,
        cut_ptr,
        constants_ptr,
        columns,
        Q: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        row = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = cols < columns
        at = row.to(tl.int64) * columns + cols
        lr, decay, beta = tl.load(constants_ptr), tl.load(constants_ptr + 1), tl.load(constants_ptr + 2)
        g = tl.load(grad_ptr + at, mask=inside)
        z = tl.load(trace_ptr + at, mask=inside) * decay + g
        param = tl.load(param_ptr + at, mask=inside)
        td = tl.load(td_ptr + row)
        h = tl.load(h_ptr + row)
        if Q:
            grad_td = tl.load(continuing_ptr + row) * tl.load(next_grad_ptr + at, mask=inside) - g
            update = -tl.load(bias_ptr + row) * grad_td + td * z - h * g
        else:
            update = td * z - h * g - beta * param
        tl.store(param_ptr + at, param + lr * update, mask=inside)
        tl.store(trace_ptr + at, tl.where(tl.load(cut_ptr + row) != 0, 0.0, z), mask=inside)


def qrc_update_(
    param: Tensor,
    trace: Tensor,
    grad: Tensor,
    td_error: Tensor,
    h_value: Tensor,
    cut: Tensor,
    constants: Tensor,
    *,
    next_grad: Tensor | None = None,
    bias: Tensor | None = None,
    gamma_continuing: Tensor | None = None,
) -> None:
    """One network's QRC update in place on the flat buffers ``param`` and ``trace`` (P, N) from its gradient
    ``grad`` (P, N), the members' δ, h(o, a) and cut flags (P,) and ``constants`` = (α, γλ, β) in the buffers' dtype
    (made before any recording: a graph cannot copy them from the host). With ``next_grad`` (g′), ``bias`` (b) and
    ``gamma_continuing`` (γ c) it is Q's update, else h's."""
    rows, columns = param.shape
    q = next_grad is not None
    _qrc_update_kernel[(rows, triton.cdiv(columns, BLOCK))](
        param,
        trace,
        grad,
        next_grad if q else grad,
        bias if q else td_error,
        td_error,
        h_value,
        gamma_continuing if q else td_error,
        cut.to(torch.int8),
        constants,
        columns,
        Q=q,
        BLOCK=BLOCK,
        enable_fp_fusion=False,
    )
