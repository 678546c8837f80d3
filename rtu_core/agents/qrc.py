"""QRC(λ): Q-learning with regularised gradient correction and Watkins traces (docs/method.md §4).

Two networks, Q and h, each with its own memory. For a transition (o, a, r, o') of every member:

    δ   = r + γ (1 - terminal) max_a' Q(o', a') - Q(o, a)
    z_Q ← γλ z_Q + ∇Q(o, a),   z_h ← γλ z_h + ∇h(o, a),   b ← γλ b + h(o, a)
    θ_Q ← θ_Q + α_Q [ -b ∇δ + δ z_Q - h(o, a) ∇Q(o, a) ]
    θ_h ← θ_h + α_h [ δ z_h - h(o, a) ∇h(o, a) - β θ_h ]

∇δ is the full gradient of δ, through max_a' Q(o', a') (whose memory is advanced one step from o's).
All traces are zeroed after the update when the episode ends or the action taken was not greedy.
With ``no_gradient_correction`` h is taken as 0, and its network neither runs nor trains (it has no memory): b = 0,
and Q's step is Watkins Q(λ)'s, θ_Q ← θ_Q + α_Q δ z_Q (a diagnostic).
Plain SGD, optionally with a per-member global-norm clip of each update. Actions are ε-greedy with ε
decaying linearly from ε_start to ε_end over the first ``exploration_fraction`` of the steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor

from ..engines import Engine, choose, kernels, native
from ..network import MemoryNetwork
from ..optim import _flat_buffer, _views, per_member
from ..rng import MemberRandom
from .base import MemoryAgent, Pending


@dataclass
class QRCStep(Pending):
    """What QRC's ``act`` hands to ``learn``: a_t, Q(o_t, a_t) and h(o_t, a_t) (with their autograd graphs, or the
    native engine's forward tapes), and whether a_t was not greedy (a Watkins cut)."""

    q: Tensor | None = None
    h: Tensor | None = None
    nongreedy: Tensor | None = None
    tapes: tuple | None = None


def td_error(reward: Tensor, next_q: Tensor, continuing: Tensor, q: Tensor, gamma: float) -> Tensor:
    """δ = r + γ (1 - terminal) max_a' Q(o', a') - Q(o, a), with ``next_q`` the max and ``continuing`` 1 - terminal."""
    return reward + gamma * continuing * next_q - q


def q_direction(grad_q, grad_next, q_trace, bias_trace, td_error, h, gamma_continuing) -> Tensor:
    """Q's update direction u_Q = -b ∇δ + δ z_Q - h(o, a) ∇Q(o, a), with ∇δ = γ (1 - terminal) ∇Q(o', a*) - ∇Q(o, a);
    on flat (P, N) rows (gradients and trace), each member's scalars (P,) as a column."""
    grad_td = gamma_continuing.unsqueeze(1) * grad_next - grad_q
    return -bias_trace.unsqueeze(1) * grad_td + td_error.unsqueeze(1) * q_trace - h.unsqueeze(1) * grad_q


def h_direction(grad_h, h_trace, td_error, h, theta_h, beta: float) -> Tensor:
    """h's update direction u_h = δ z_h - h(o, a) ∇h(o, a) - β θ_h, on flat (P, N) rows."""
    return td_error.unsqueeze(1) * h_trace - h.unsqueeze(1) * grad_h - beta * theta_h


def _flat(tensors) -> Tensor:
    """Per-member tensors (P, ...) side by side as one (P, N) tensor, in order (the flat buffers' layout)."""
    return torch.cat([t.flatten(1) for t in tensors], dim=1)


class QRC(MemoryAgent):
    """QRC(λ) with memory networks Q and h (equations in the module docstring); one update per step. Its gradients by
    autograd: the reference that the native engine's subclass (``qrc_native.py``) matches."""

    def __init__(
        self,
        config,
        obs_size: int,
        action_space: gym.Space,
        init_generators,
        action_random: MemberRandom,
        engine: Engine | None = None,
    ):
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError("qrc needs a discrete action space")
        self.check_engine(engine)
        P, self.num_actions = config.population, int(action_space.n)
        net = config.network_kwargs()
        dtype = getattr(torch, config.dtype)
        # initialised on the CPU (so the numbers do not depend on the device), then moved
        self.q_net = MemoryNetwork(obs_size, self.num_actions, population=P, generators=init_generators, **net)
        self.h_net = MemoryNetwork(obs_size, self.num_actions, population=P, generators=init_generators, **net)
        self.q_net.to(dtype=dtype, device=config.device)
        self.h_net.to(dtype=dtype, device=config.device)
        self.config = config
        self.networks = {"q": self.q_net, "h": self.h_net} if self.correction else {"q": self.q_net}
        self.q_params, self.h_params = list(self.q_net.parameters()), list(self.h_net.parameters())
        # traces as views of one flat (P, N) buffer per network (the native step works on the flat buffers)
        self.q_trace_flat, self.h_trace_flat = _flat_buffer(self.q_params), _flat_buffer(self.h_params)
        self.q_trace, self.h_trace = _views(self.q_trace_flat, self.q_params), _views(self.h_trace_flat, self.h_params)
        self.bias_trace = torch.zeros(P, dtype=dtype, device=config.device)
        self.random = action_random
        self.steps_taken = 0
        self.one_pass = None  # the flat parameters and constants of the one-pass GPU update, once enabled
        if (engine or choose(config)).kernel:
            self.enable_one_pass_update()
        if config.rtrl_refresh or config.staleness_every:
            self.keep_history(config.population)
        self.reset_memory()

    def enable_one_pass_update(self) -> None:
        """Update each network in one pass of ``kernels.qrc_update_`` (the GPU's default without clipping): the
        parameters become views of one flat (P, N) buffer per network, the constants a tensor made now."""
        c = self.config
        dtype, device = self.q_trace_flat.dtype, self.q_trace_flat.device
        self.one_pass = (
            native.flatten_parameters(self.q_params),
            native.flatten_parameters(self.h_params),
            torch.tensor([c.lr_q, c.gamma * c.trace_decay, 0.0], dtype=dtype, device=device),
            torch.tensor([c.lr_h, c.gamma * c.trace_decay, c.beta], dtype=dtype, device=device),
        )

    def epsilon(self) -> float:
        c = self.config
        progress = self.steps_taken / max(1.0, c.exploration_fraction * c.steps)
        return max(c.epsilon_end, c.epsilon_start - (c.epsilon_start - c.epsilon_end) * progress)

    @property
    def correction(self) -> bool:
        """Whether Q's step has the gradient correction (else h ≡ 0: Watkins Q(λ))."""
        return not self.config.no_gradient_correction

    def act(self, obs: Tensor, greedy: bool = False, learn: bool = True) -> QRCStep:
        """Advance Q's and h's memories on o_t and choose a_t ε-greedily (greedily if asked); the returned step is
        what ``learn`` needs. With ``learn=False`` (evaluation) only Q runs, without gradients, and a_t is greedy."""
        if not learn:
            return QRCStep(self.recur(obs).argmax(dim=-1))
        step = self.device_act(obs, *self.act_inputs(greedy))
        self.remember(obs)
        return step

    def act_inputs(self, greedy: bool = False) -> tuple[Tensor, float]:
        """What ``act`` takes from the host, once per step: the draws u (P, 2) and ε (0 when greedy)."""
        draws, epsilon = self.random.uniform(2), 0.0 if greedy else self.epsilon()
        self.steps_taken += 1
        return draws, epsilon

    def learn(self, step: QRCStep, reward: Tensor, next_obs: Tensor, terminated: Tensor, done: Tensor) -> Tensor:
        """One QRC(λ) update from the transition ``step`` began, then the ended members' memories zeroed; returns
        δ_t (P,)."""
        delta = self.update(step, reward, next_obs, terminated, done)
        self.reset_memory(done)
        return delta

    def recur(self, obs: Tensor) -> Tensor:
        """Q(o_t, ·), its memory advanced, without gradients (evaluation)."""
        with torch.no_grad():
            q, self.memories["q"] = self.q_net.step(obs, self.memories["q"])
        return q

    def device_act(self, obs: Tensor, draws: Tensor, epsilon: float | Tensor) -> QRCStep:
        """``act``'s work on the device, from o_t and what ``act_inputs`` gave (ε may be a 0-d tensor): Q(o, ·) and
        h(o, ·) with their graphs; a* = argmax Q(o, ·), and a = min(⌊u₁ A⌋, A - 1) where u₀ < ε, else a*, from the
        draws u (P, 2)."""
        q, self.memories["q"] = self.q_net.step(obs, self.memories["q"])
        if self.correction:
            h, self.memories["h"] = self.h_net.step(obs, self.memories["h"])
        else:
            h = torch.zeros_like(q.detach())
        greedy_action = q.detach().argmax(dim=-1)
        random_action = (draws[:, 1] * self.num_actions).long().clamp(max=self.num_actions - 1)
        action = torch.where(draws[:, 0] < epsilon, random_action, greedy_action)
        chosen = action.unsqueeze(-1)
        return QRCStep(
            action, q.gather(-1, chosen).squeeze(-1), h.gather(-1, chosen).squeeze(-1), action != greedy_action
        )

    def update(self, step: QRCStep, reward: Tensor, next_obs: Tensor, terminated: Tensor, done: Tensor) -> Tensor:
        """δ, the gradients ∇Q(o, a), ∇h(o, a) and ∇Q(o', a*) by autograd, then the traces and both networks' steps
        (``q_direction``, ``h_direction``), clipped per member where asked."""
        c, continuing = self.config, (~terminated).to(step.q.dtype)
        next_q = self.q_net.step(next_obs, self.memories["q"])[0].max(dim=-1).values
        delta = td_error(reward, next_q, continuing, step.q, c.gamma).detach()
        differentiated = self.q_params + (self.h_params if self.correction else [])
        grads = torch.autograd.grad((step.q + step.h).sum(), differentiated)
        grad_q, grad_h = grads[: len(self.q_params)], grads[len(self.q_params) :]
        grad_next = torch.autograd.grad(next_q.sum(), self.q_params)
        decay = c.gamma * c.trace_decay
        h_value = step.h.detach() if self.correction else torch.zeros_like(step.q)
        with torch.no_grad():
            # on the flat (P, N) buffers, each member's scalars as a column: a handful of whole-row ops per network
            # (a CUDA graph's cost is its number of kernels), element for element the per-parameter formulas
            self.bias_trace.mul_(decay).add_(h_value)
            if getattr(self, "one_pass", None) is not None:  # (a checkpoint from before it existed has none)
                cut = done | step.nongreedy
                self._update_in_one_pass(grad_q, grad_h, grad_next, delta, h_value, continuing, cut)
                return delta
            g = _flat(grad_q)
            self.q_trace_flat.mul_(decay).add_(g)
            gamma_continuing = c.gamma * continuing
            u = q_direction(g, _flat(grad_next), self.q_trace_flat, self.bias_trace, delta, h_value, gamma_continuing)
            updated = [(self.q_params, u)]
            if self.correction:
                g = _flat(grad_h)
                self.h_trace_flat.mul_(decay).add_(g)
                u = h_direction(g, self.h_trace_flat, delta, h_value, _flat(self.h_params), c.beta)
                updated.append((self.h_params, u))
            for (params, update), lr in zip(updated, (c.lr_q, c.lr_h)):
                updates = _views(update, params)
                scale = self._clip_scale(updates) * lr
                for p, u in zip(params, updates):
                    p.add_(per_member(scale, u) * u)
            cut = (done | step.nongreedy).unsqueeze(1)
            self.q_trace_flat.masked_fill_(cut, 0.0)
            self.h_trace_flat.masked_fill_(cut, 0.0)
            self.bias_trace.masked_fill_(cut.squeeze(1), 0.0)
        return delta

    def _update_in_one_pass(self, grad_q, grad_h, grad_next, td_error, h_value, continuing, cut) -> None:
        """``_learn_autograd``'s update (after b) by one kernel per network, then b zeroed where cut."""
        q_flat, h_flat, q_constants, h_constants = self.one_pass
        gamma_continuing = self.config.gamma * continuing
        kernels.qrc_update_(
            q_flat,
            self.q_trace_flat,
            _flat(grad_q),
            td_error,
            h_value,
            cut,
            q_constants,
            next_grad=_flat(grad_next),
            bias=self.bias_trace,
            gamma_continuing=gamma_continuing,
        )
        if self.correction:
            kernels.qrc_update_(h_flat, self.h_trace_flat, _flat(grad_h), td_error, h_value, cut, h_constants)
        else:
            self.h_trace_flat.masked_fill_(cut.unsqueeze(1), 0.0)
        self.bias_trace.masked_fill_(cut, 0.0)
        self.forget_coefficients()  # the kernel's writes leave the parameters' version counters as they were

    def _clip_scale(self, updates: list[Tensor]) -> Tensor:
        """min(1, clip / ‖update‖₂) per member (1 when clipping is off)."""
        norm = torch.sqrt(sum(u.pow(2).flatten(1).sum(1) for u in updates))
        if not self.config.grad_clip:
            return torch.ones_like(norm)
        return (self.config.grad_clip / (norm + 1e-12)).clamp(max=1.0)

    def trace_norms(self) -> dict[str, Tensor]:
        """‖z‖₁ of each trained network's eligibility trace, per member."""
        traces = {"q": self.q_trace, "h": self.h_trace}
        return {name: sum(t.abs().flatten(1).sum(1) for t in traces[name]) for name in self.networks}
