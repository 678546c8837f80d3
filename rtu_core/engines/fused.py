"""The agents' network, RTU in RTRL mode, with its backward pass written out: no autograd graph per step.

A streaming step differentiates one output of a one-step graph, so autograd's bookkeeping (recording the
graph, running its engine) costs more than the arithmetic. This module computes the same gradients by hand
(MemoryNetwork, ``docs/method.md`` §2; tested equal to autograd in float64):

    forward     a = W_f o + b_f,  n = (a - mean a) / σ,  σ = sqrt(var a + ε),  x = f(n)   (per feature block)
                (h_t, S_t) = RTU RTRL advance(x, h_{t-1}, S_{t-1}),  c = [Re h_t, Im h_t],  y = tanh(c)
                out = W_o y + b_o
    backward    given g = dL/d out:
                dW_o = g yᵀ,  db_o = g,  dc = (W_oᵀ g) ⊙ (1 - y²)
                dp = dc¹ Re S^p + dc² Im S^p                  (exact RTRL, every RTU parameter p)
                dx = B_realᵀ(γ D¹ dc¹) + B_imagᵀ(γ D² dc²),  dn = dx ⊙ f'(n)
                da = (dn - mean dn - n · mean(dn ⊙ n)) / σ,  dW_f = da oᵀ,  db_f = da,  do = W_fᵀ da
                (the last two lines once per feature block, from the cell down)

Supported: head_width = 0 (linear read-out) and the RTU in RTRL mode (``engines.fused_applies``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..cells import RTRLState
from ..layers import activation_derivative, layer_norm_backward, layer_norm_forward, matvec
from ..network import MemoryNetwork


class Block(NamedTuple):
    """One feature block's forward values: its input, its normalised pre-activation n and 1/σ."""

    input: Tensor
    normed: Tensor
    inv_std: Tensor


class Tape(NamedTuple):
    """What the backward pass needs from the forward pass (the RTRL state holds the rest)."""

    blocks: tuple[Block, ...]
    y: Tensor


@torch.no_grad()
def forward(net: MemoryNetwork, obs: Tensor, memory: RTRLState) -> tuple[Tensor, RTRLState, Tape]:
    """(out_t, RTRL state_t, tape) from o_t and the state of step t-1."""
    blocks, x = [], obs
    for layer in net.features:
        normed, inv_std = layer_norm_forward(layer(x))
        blocks.append(Block(x, normed, inv_std))
        x = net.activation(normed)
    memory = net.cell.advance(x, memory)
    y = torch.tanh(memory.features)
    return net.head(y), memory, Tape(tuple(blocks), y)


@torch.no_grad()
def backward(net: MemoryNetwork, tape: Tape, memory: RTRLState, grad_out: Tensor) -> None:
    """Set ``p.grad`` of every parameter of ``net`` to d(grad_out · out_t)/dp (RTRL for the RTU)."""
    head, cell = net.head, net.cell
    head.weight.grad = grad_out.unsqueeze(-1) * tape.y.unsqueeze(-2)
    head.bias.grad = grad_out
    dc = matvec(head.weight.transpose(-1, -2), grad_out) * (1 - tape.y.square())
    for p, grad in zip((cell.nu_log, cell.theta_log, cell.B_real, cell.B_imag), cell._parameter_grads(dc, memory)):
        p.grad = grad
    dx = cell._input_grad(dc, memory)
    for i in reversed(range(len(net.features))):
        layer, block = net.features[i], tape.blocks[i]
        dn = dx * activation_derivative(net.activation_name, block.normed)
        da = layer_norm_backward(dn, block.normed, block.inv_std)
        layer.weight.grad = da.unsqueeze(-1) * block.input.unsqueeze(-2)
        layer.bias.grad = da
        if i:
            dx = matvec(layer.weight.transpose(-1, -2), da)
