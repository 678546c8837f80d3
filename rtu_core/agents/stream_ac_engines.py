"""Stream AC(λ) on the fast engines: the rule of ``stream_ac.py`` (δ by ``td_error``, the policy's output gradient by
``output_gradient``, ObGD), with the networks' gradients by the hand-written backward of ``engines.fused`` or by the
native C++ loops instead of autograd. Each class replaces ``device_act`` and ``update`` (and the native one the
evaluation step, ``recur``); the twin tests hold them to the autograd reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..engines import fused, native
from .stream_ac import ActorCriticStep, StreamAC, output_gradient, td_error


class FusedStreamAC(StreamAC):
    """Stream AC(λ) with the hand-written forward and backward of ``engines.fused`` (the networks' tapes instead of
    autograd graphs)."""

    engine = "fused"

    @torch.no_grad()
    def device_act(self, obs: Tensor, noise: Tensor | None) -> ActorCriticStep:
        out, self.memories["actor"], actor_tape = fused.forward(self.actor, obs, self.memories["actor"])
        value, self.memories["critic"], critic_tape = fused.forward(self.critic, obs, self.memories["critic"])
        action = self._action(out, noise)
        return ActorCriticStep(action, value.squeeze(-1), out=out, tape=(actor_tape, critic_tape))

    @torch.no_grad()
    def update(self, step, reward, next_obs, terminated, done) -> Tensor:
        """p.grad = ∇[V(o_t)] for the critic and ∇[log π(a_t|o_t) + η sign(δ) H] for the actor, by hand; then ObGD."""
        next_value = self.critic.evaluate(next_obs, self.memories["critic"]).squeeze(-1)
        delta = td_error(reward, next_value, terminated, step.value, self.gamma)
        log_std = None if self.discrete else self.log_std
        grad_out, grad_log_std = output_gradient(step.out, step.action, delta, self.entropy_coeff, log_std)
        if grad_log_std is not None:
            self.log_std.grad = grad_log_std
        actor_tape, critic_tape = step.tape
        fused.backward(self.actor, actor_tape, self.memories["actor"], grad_out)
        fused.backward(self.critic, critic_tape, self.memories["critic"], torch.ones_like(step.value).unsqueeze(-1))
        self.actor_optimizer.step(delta, reset=done)
        self.critic_optimizer.step(delta, reset=done)
        return delta


class NativeStreamAC(StreamAC):
    """Stream AC(λ) by the C++ loops of ``engines.native``, on flat per-member parameter and trace buffers."""

    engine = "native"

    def __init__(self, config, *args):
        super().__init__(config, *args)
        actor_params = list(self.actor.parameters()) + ([] if self.discrete else [self.log_std])
        self.native = (
            native.network(self.actor, native.flatten_parameters(actor_params)),
            native.network(self.critic, native.flatten_parameters(list(self.critic.parameters()))),
        )
        self._grads = tuple(torch.zeros_like(net.flat) for net in self.native)

    @torch.no_grad()
    def recur(self, obs: Tensor) -> Tensor:
        """The recurrence alone: no sensitivities are advanced."""
        out, self.memories["actor"] = self.native[0].recur(obs, self.memories["actor"])
        return out

    @torch.no_grad()
    def device_act(self, obs: Tensor, noise: Tensor | None) -> ActorCriticStep:
        (actor, critic), memories = self.native, self.memories
        out, memories["actor"], actor_tape = actor.forward(obs, memories["actor"], advance=True)
        value, memories["critic"], critic_tape = critic.forward(obs, memories["critic"], advance=True)
        if self.discrete and noise is not None:  # the inverse CDF of ``categorical_action`` in one call
            action = actor.module.categorical_sample(out, noise)
        else:
            action = self._action(out, noise)
        return ActorCriticStep(action, value.squeeze(-1), out=out, tape=(actor_tape, critic_tape))

    @torch.no_grad()
    def update(self, step, reward, next_obs, terminated, done) -> Tensor:
        """V(o_{t+1}), δ, then each network's backward pass with ObGD on its flat parameter and trace buffers,
        member by member (each row updated as soon as its gradient is computed)."""
        actor, critic = self.native
        actor_grad, critic_grad = self._grads
        memories = self.memories
        next_value = critic.forward(next_obs, memories["critic"], advance=False)[0]
        # δ (``td_error``) and the output gradients (``output_gradient``) in one call
        delta, grad_out, grad_log_std = actor.module.stream_ac_targets(
            step.out,
            step.action,
            step.value,
            next_value,
            reward,
            terminated,
            None if self.discrete else self.log_std.exp(),
            self.gamma,
            self.entropy_coeff,
        )
        if not self.discrete:
            actor_grad[:, -self.out_size :] = grad_log_std
        critic_out = torch.ones_like(next_value)  # dV/d out
        for net, grad, out, tape, memory, optimizer in (
            (actor, actor_grad, grad_out, step.tape[0], memories["actor"], self.actor_optimizer),
            (critic, critic_grad, critic_out, step.tape[1], memories["critic"], self.critic_optimizer),
        ):
            group = optimizer.param_groups[0]
            decay = group["gamma"] * group["lamda"]
            update = net.module.obgd_update(optimizer.flat_trace, decay, delta, group["lr"], group["kappa"], done)
            net.backward(grad, out, tape, memory, update=update)
            net.changed()
        return delta
