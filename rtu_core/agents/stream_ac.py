"""Stream AC(λ) (Elsayed et al. 2024), with memory networks (docs/method.md §4): one update per step, no replay.

For a transition (o_t, a_t, r_t, o_{t+1}) of every population member:

    δ_t = r_t + γ (1 - terminal) V(o_{t+1}) - V(o_t)
    z_V ← γλ z_V + ∇V(o_t)
    z_π ← γλ z_π + ∇[log π(a_t | o_t) + η sign(δ_t) H(π(· | o_t))]
    θ_V ← θ_V + α'_V δ_t z_V,   θ_π ← θ_π + α'_π δ_t z_π        (ObGD step sizes α', κ_critic / κ_actor)

Traces are zeroed after the update of a transition that ends the episode, together with the memory.
With RTUs in RTRL mode, ∇ with respect to the RTU parameters is the exact RTRL gradient, so the
eligibility trace accumulates RTRL gradients like any other gradient. The engine (``rtu_core.engines``) computes
them: autograd (the reference below), the hand-written backward of ``engines.fused``, or the native C++ loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..engines import Engine, choose, fused, native
from ..network import MemoryNetwork
from ..optim import AdaptiveObGD, ObGD
from ..rng import MemberRandom
from .base import MemoryAgent, Pending
from .policy import categorical, categorical_action, categorical_grad, gaussian, gaussian_action, gaussian_grads

OPTIMIZERS = {"obgd": ObGD, "adaptive_obgd": AdaptiveObGD}


@dataclass
class ActorCriticStep(Pending):
    """What Stream AC's ``act`` hands to ``learn``: a_t, V(o_t) and, per engine, the actor's output and the forward
    tapes (hand-written backward) or log π(a_t|o_t) and H(π) with their autograd graphs."""

    value: Tensor | None = None
    out: Tensor | None = None
    tape: tuple | None = None
    log_prob: Tensor | None = None
    entropy: Tensor | None = None


def td_error(reward: Tensor, next_value: Tensor, terminated: Tensor, value: Tensor, gamma: float) -> Tensor:
    """δ_t = r_t + γ (1 - terminal) V(o_{t+1}) - V(o_t)."""
    return reward + gamma * next_value * (~terminated) - value


def output_gradient(
    out: Tensor, action: Tensor, td_error: Tensor, entropy_coeff: float, log_std: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """d[log π(a_t|o_t) + η sign(δ_t) H(π)]/d out_t of a categorical policy (``log_std`` None) or a Gaussian one, and
    for the Gaussian its gradient for log σ: what the autograd step's ``backward()`` finds, written out."""
    coeff = entropy_coeff * td_error.sign()
    if log_std is None:
        return categorical_grad(out, action, coeff), None
    return gaussian_grads(out, log_std, action, coeff)


class StreamAC(MemoryAgent):
    """Stream AC(λ) with memory networks for actor and critic (module docstring); ObGD per network."""

    def __init__(
        self,
        config,
        obs_size: int,
        action_space: gym.Space,
        init_generators,
        action_random: MemberRandom,
        engine: Engine | None = None,
    ):
        P = config.population
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.out_size = out_size = int(action_space.n) if self.discrete else int(action_space.shape[0])
        net = config.network_kwargs()
        self.actor = MemoryNetwork(obs_size, out_size, population=P, generators=init_generators, **net)
        self.critic = MemoryNetwork(obs_size, 1, population=P, generators=init_generators, **net)
        dtype = getattr(torch, config.dtype)
        self.actor.to(dtype=dtype, device=config.device)  # initialised on the CPU, then moved
        self.critic.to(dtype=dtype, device=config.device)
        actor_params = list(self.actor.parameters())
        if not self.discrete:
            self.log_std = nn.Parameter(torch.zeros(P, out_size, dtype=dtype, device=config.device))
            actor_params.append(self.log_std)
        opt = OPTIMIZERS[config.optimizer]
        self.actor_optimizer = opt(
            actor_params, lr=config.lr, gamma=config.gamma, lamda=config.trace_decay, kappa=config.kappa_actor
        )
        self.critic_optimizer = opt(
            self.critic.parameters(),
            lr=config.lr,
            gamma=config.gamma,
            lamda=config.trace_decay,
            kappa=config.kappa_critic,
        )
        self.gamma = config.gamma
        self.entropy_coeff = config.entropy_coeff
        self.random = action_random
        self.networks = {"actor": self.actor, "critic": self.critic}
        self.engine = (engine or choose(config)).step  # autograd, fused or native: fixed for the run
        self.native = None
        if self.engine == "native":
            self.native = (
                native.network(self.actor, native.flatten_parameters(actor_params)),
                native.network(self.critic, native.flatten_parameters(list(self.critic.parameters()))),
            )
            self._grads = tuple(torch.zeros_like(net.flat) for net in self.native)
        if config.rtrl_refresh or config.staleness_every:
            self.keep_history(config.population)
        self.reset_memory()

    def _policy(self, out: Tensor, noise: Tensor | None):
        """(a_t, log π(a_t), H(π)): what the autograd step differentiates."""
        if self.discrete:
            return categorical(out, noise)
        return gaussian(out, self.log_std, noise)

    def _action(self, out: Tensor, noise: Tensor | None) -> Tensor:
        """a_t alone, from the same draws as ``_policy``: for the steps with a hand-written policy gradient and for
        evaluation."""
        if self.discrete:
            return categorical_action(out, noise)
        return gaussian_action(out, self.log_std, noise)

    def act_inputs(self, greedy: bool = False) -> tuple[Tensor | None]:
        """What ``act`` takes from the host: the policy's draws, u (P, 1) or ε (P, action size); None when greedy."""
        if greedy:
            return (None,)
        return (self.random.uniform(1) if self.discrete else self.random.normal(self.out_size),)

    def device_act(self, obs: Tensor, noise: Tensor | None) -> ActorCriticStep:
        """``act``'s work on the device, from o_t and the draws of ``act_inputs``."""
        if self.engine == "native":
            return self._act_native(obs, noise)
        if self.engine == "fused":
            return self._act_fused(obs, noise)
        return self._act_autograd(obs, noise)

    def act(self, obs: Tensor, greedy: bool = False, learn: bool = True) -> ActorCriticStep:
        """Advance both networks' memories on o_t and choose a_t (sampled, or greedy: argmax / mean); the returned
        step is what ``learn`` needs. With ``learn=False`` (evaluation) only the actor runs, without gradients."""
        if not learn:  # with the native engine, the recurrence alone: no sensitivities are advanced
            with torch.no_grad():
                run = self.native[0].recur if self.native else self.actor.step
                out, self.memories["actor"] = run(obs, self.memories["actor"])
            return ActorCriticStep(self._action(out, *self.act_inputs(greedy)))
        step = self.device_act(obs, *self.act_inputs(greedy))
        self.remember(obs)
        return step

    def learn(
        self, step: ActorCriticStep, reward: Tensor, next_obs: Tensor, terminated: Tensor, done: Tensor
    ) -> Tensor:
        """One Stream AC(λ) update from the transition ``step`` began; returns δ_t (P,)."""
        if self.engine == "native":
            delta = self._learn_native(step, reward, next_obs, terminated, done)
        elif self.engine == "fused":
            delta = self._learn_fused(step, reward, next_obs, terminated, done)
        else:
            delta = self._learn_autograd(step, reward, next_obs, terminated, done)
        self.reset_memory(done)
        return delta

    # -- autograd: the networks' own forward, gradients by backward() --------------------------------------
    def _act_autograd(self, obs: Tensor, noise: Tensor | None) -> ActorCriticStep:
        out, self.memories["actor"] = self.actor.step(obs, self.memories["actor"])
        value, self.memories["critic"] = self.critic.step(obs, self.memories["critic"])
        action, log_prob, entropy = self._policy(out, noise)
        return ActorCriticStep(action, value.squeeze(-1), log_prob=log_prob, entropy=entropy)

    def _learn_autograd(self, step, reward, next_obs, terminated, done) -> Tensor:
        with torch.no_grad():
            next_value = self.critic.evaluate(next_obs, self.memories["critic"]).squeeze(-1)
            delta = td_error(reward, next_value, terminated, step.value, self.gamma).detach()
        objective = step.value + step.log_prob + self.entropy_coeff * delta.sign() * step.entropy
        self.actor_optimizer.zero_grad()
        self.critic_optimizer.zero_grad()
        objective.sum().backward()
        self.actor_optimizer.step(delta, reset=done)
        self.critic_optimizer.step(delta, reset=done)
        return delta

    # -- fused: the hand-written forward and backward of ``engines.fused`` ------------------------------------
    @torch.no_grad()
    def _act_fused(self, obs: Tensor, noise: Tensor | None) -> ActorCriticStep:
        out, self.memories["actor"], actor_tape = fused.forward(self.actor, obs, self.memories["actor"])
        value, self.memories["critic"], critic_tape = fused.forward(self.critic, obs, self.memories["critic"])
        action = self._action(out, noise)
        return ActorCriticStep(action, value.squeeze(-1), out=out, tape=(actor_tape, critic_tape))

    @torch.no_grad()
    def _learn_fused(self, step, reward, next_obs, terminated, done) -> Tensor:
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

    # -- native: the C++ loops of ``engines.native`` on flat per-member buffers --------------------------------
    @torch.no_grad()
    def _act_native(self, obs: Tensor, noise: Tensor | None) -> ActorCriticStep:
        (actor, critic), memories = self.native, self.memories
        out, memories["actor"], actor_tape = actor.forward(obs, memories["actor"], advance=True)
        value, memories["critic"], critic_tape = critic.forward(obs, memories["critic"], advance=True)
        if self.discrete and noise is not None:  # the inverse CDF of ``categorical_action`` in one call
            action = actor.module.categorical_sample(out, noise)
        else:
            action = self._action(out, noise)
        return ActorCriticStep(action, value.squeeze(-1), out=out, tape=(actor_tape, critic_tape))

    @torch.no_grad()
    def _learn_native(self, step, reward, next_obs, terminated, done) -> Tensor:
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

    def trace_norms(self) -> dict[str, Tensor]:
        """‖z‖₁ of each network's eligibility trace, per member."""
        return {
            name: sum(t.abs().flatten(1).sum(1) for t in opt.traces())
            for name, opt in (("actor", self.actor_optimizer), ("critic", self.critic_optimizer))
            if opt.traces()
        }
