"""QRC(λ) by the native C++ loops: the rule of ``qrc.py`` (δ, the traces, ``q_direction`` and ``h_direction``, the
per-member clip), computed on flat per-member buffers by ``engines.native`` instead of autograd. The class replaces
``device_act``, ``update`` and the evaluation step ``recur``; the twin tests hold it to the autograd reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..engines import native
from .qrc import QRC, QRCStep


class NativeQRC(QRC):
    """QRC(λ) with Q's and h's forward and backward passes and updates in C++, member by member."""

    engine = "native"

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.native = (
            native.network(self.q_net, native.flatten_parameters(self.q_params)),
            native.network(self.h_net, native.flatten_parameters(self.h_params)),
        )
        # ∇Q(o, a), ∇h(o, a), ∇Q(o', a*); each update overwrites the first two with its direction u
        self._buffers = tuple(torch.zeros_like(net.flat) for net in (*self.native, self.native[0]))

    @torch.no_grad()
    def recur(self, obs: Tensor) -> Tensor:
        """The recurrence alone: no sensitivities are advanced."""
        q, self.memories["q"] = self.native[0].recur(obs, self.memories["q"])
        return q

    @torch.no_grad()
    def device_act(self, obs: Tensor, draws: Tensor, epsilon: float) -> QRCStep:
        """The forward passes (memories advanced) and the ε-greedy choice of ``QRC.device_act``, in one native call."""
        (q_net, h_net), memories = self.native, self.memories
        q, memories["q"], q_tape = q_net.forward(obs, memories["q"], advance=True)
        if self.correction:
            h, memories["h"], h_tape = h_net.forward(obs, memories["h"], advance=True)
        else:
            h, h_tape = torch.zeros_like(q), None
        return QRCStep(*q_net.module.qrc_choose(q, h, draws, epsilon), (q_tape, h_tape))

    @torch.no_grad()
    def update(self, step: QRCStep, reward: Tensor, next_obs: Tensor, terminated: Tensor, done: Tensor) -> Tensor:
        """``QRC.update`` by the native loops: Q(o', ·) without advancing the memory, then member by member
        ∇Q(o', a*) (through the sensitivities one step further), ∇Q(o, a) and that member's Q update, while its
        sensitivities and rows are in cache; then ∇h(o, a), each member's h row updated as soon as it is computed."""
        c = self.config
        q_net, h_net = self.native
        memories = self.memories
        grad_q, grad_h, grad_next = self._buffers
        q_tape, h_tape = step.tapes
        decay = c.gamma * c.trace_decay
        next_q, _, next_tape = q_net.forward(next_obs, memories["q"], advance=False)
        # δ, b (in place, zeroed where cut), the update coefficients and dQ/d out at a and at a* = argmax Q(o', ·)
        delta, coeffs, onehot, onehot_next = q_net.module.qrc_targets(
            next_q,
            reward,
            terminated,
            done,
            step.q,
            step.h,
            step.action,
            step.nongreedy,
            self.bias_trace,
            c.gamma,
            decay,
            self.correction,
        )
        next_pass = q_net.backward(grad_next, onehot_next, next_tape, memories["q"], next_step=True, defer=True)
        q_update = q_net.module.qrc_update(
            self.q_trace_flat, grad_next, coeffs, decay, c.lr_q, 0.0, c.grad_clip, next_pass
        )
        q_net.backward(grad_q, onehot, q_tape, memories["q"], update=q_update)
        q_net.changed()
        if self.correction:
            h_update = h_net.module.qrc_update(
                self.h_trace_flat, None, coeffs, decay, c.lr_h, c.beta, c.grad_clip, None
            )
            h_net.backward(grad_h, onehot, h_tape, memories["h"], update=h_update)
            h_net.changed()
        return delta
