"""Stream AC(λ) (Elsayed et al. 2024), with memory networks (docs/method.md §4): one update per step, no replay.

For a transition (o_t, a_t, r_t, o_{t+1}) of every population member:

    δ_t = r_t + γ (1 - terminal) V(o_{t+1}) - V(o_t)
    z_V ← γλ z_V + ∇V(o_t)
    z_π ← γλ z_π + ∇[log π(a_t | o_t) + η sign(δ_t) H(π(· | o_t))]
    θ_V ← θ_V + α'_V δ_t z_V,   θ_π ← θ_π + α'_π δ_t z_π        (ObGD step sizes α', κ_critic / κ_actor)

Traces are zeroed after the update of a transition that ends the episode, together with the memory.
With RTUs in RTRL mode, ∇ with respect to the RTU parameters is the exact RTRL gradient, so the
eligibility trace accumulates RTRL gradients like any other gradient. The engine (``rtu_core.engines``) computes
them: autograd, in this file (the reference), or the same rule by the hand-written backward of ``engines.fused`` or
the native C++ loops, in ``stream_ac_engines.py`` (subclasses that replace ``device_act`` and ``update``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..network import MemoryNetwork
from ..optim import AdaptiveObGD, ObGD
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
    """Stream AC(λ) with memory networks for actor and critic (module docstring); ObGD per network. Its gradients by
    autograd: the reference that the engines' subclasses (``stream_ac_engines.py``) match."""

    def __init__(self, config, obs_size: int, action_space: gym.Space, init_generators, action_random, engine=None):
        self.check_engine(engine)
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
        opt, steps = OPTIMIZERS[config.optimizer], dict(lr=config.lr, gamma=config.gamma, lamda=config.trace_decay)
        self.actor_optimizer = opt(actor_params, kappa=config.kappa_actor, **steps)
        self.critic_optimizer = opt(self.critic.parameters(), kappa=config.kappa_critic, **steps)
        self.gamma = config.gamma
        self.entropy_coeff = config.entropy_coeff
        self.random = action_random
        self.networks = {"actor": self.actor, "critic": self.critic}
        if config.rtrl_refresh or config.staleness_every:
            self.keep_history(config.population)
        self.reset_memory()

    def _policy(self, out: Tensor, noise: Tensor | None):
        """(a_t, log π(a_t), H(π)): what autograd differentiates."""
        if self.discrete:
            return categorical(out, noise)
        return gaussian(out, self.log_std, noise)

    def _action(self, out: Tensor, noise: Tensor | None) -> Tensor:
        """a_t alone, from the same draws as ``_policy`` (evaluation; the engines' hand-written policy gradient)."""
        if self.discrete:
            return categorical_action(out, noise)
        return gaussian_action(out, self.log_std, noise)

    def act_inputs(self, greedy: bool = False) -> tuple[Tensor | None]:
        """What ``act`` takes from the host: the policy's draws, u (P, 1) or ε (P, action size); None when greedy."""
        if greedy:
            return (None,)
        return (self.random.uniform(1) if self.discrete else self.random.normal(self.out_size),)

    def device_act(self, obs: Tensor, noise: Tensor | None) -> ActorCriticStep:
        """``act``'s work on the device, from o_t and the draws of ``act_inputs``: both networks' memories advanced,
        a_t drawn, log π(a_t | o_t) and H(π) kept with their graphs."""
        out, self.memories["actor"] = self.actor.step(obs, self.memories["actor"])
        value, self.memories["critic"] = self.critic.step(obs, self.memories["critic"])
        action, log_prob, entropy = self._policy(out, noise)
        return ActorCriticStep(action, value.squeeze(-1), log_prob=log_prob, entropy=entropy)

    def recur(self, obs: Tensor) -> Tensor:
        """The actor's output on o_t, its memory advanced, without gradients (evaluation)."""
        with torch.no_grad():
            out, self.memories["actor"] = self.actor.step(obs, self.memories["actor"])
        return out

    def act(self, obs: Tensor, greedy: bool = False, learn: bool = True) -> ActorCriticStep:
        """Advance both networks' memories on o_t and choose a_t (sampled, or greedy: argmax / mean); the returned
        step is what ``learn`` needs. With ``learn=False`` (evaluation) only the actor runs, without gradients."""
        if not learn:
            return ActorCriticStep(self._action(self.recur(obs), *self.act_inputs(greedy)))
        step = self.device_act(obs, *self.act_inputs(greedy))
        self.remember(obs)
        return step

    def learn(
        self, step: ActorCriticStep, reward: Tensor, next_obs: Tensor, terminated: Tensor, done: Tensor
    ) -> Tensor:
        """One Stream AC(λ) update from the transition ``step`` began, then the ended members' memories zeroed;
        returns δ_t (P,)."""
        delta = self.update(step, reward, next_obs, terminated, done)
        self.reset_memory(done)
        return delta

    def update(self, step, reward, next_obs, terminated, done) -> Tensor:
        """δ_t, then ∇[V(o_t)] and ∇[log π(a_t|o_t) + η sign(δ_t) H] by ``backward()``, then ObGD on each network."""
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

    def trace_norms(self) -> dict[str, Tensor]:
        """‖z‖₁ of each network's eligibility trace, per member."""
        return {
            name: sum(t.abs().flatten(1).sum(1) for t in opt.traces())
            for name, opt in (("actor", self.actor_optimizer), ("critic", self.critic_optimizer))
            if opt.traces()
        }
