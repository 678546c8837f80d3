"""Batched PPO (Schulman et al. 2017) with memory networks, as in the paper (docs/method.md §5): a baseline that
trains in the same loop as the streaming agents (``rtu_core.training``).

Not a streaming agent: ``lanes`` = ``ppo_num_envs`` environments feed one agent. ``act`` and ``learn`` collect
``rollout_steps`` steps from every lane; then ``learn`` runs ``epochs`` passes of clipped-surrogate updates over
minibatches of *sequences*:

    δ_t = r_t + γ V(o_{t+1}) (1 - d_{t+1}) - V(o_t),   A_t = GAE(γ, λ_GAE) of δ,   R_t = A_t + V_old(o_t)
    L_π = -E[min(ρ_t Â_t, clip(ρ_t, 1 ± ε) Â_t)] - η H,   ρ_t = π(a_t|o_t) / π_old(a_t|o_t),  Â normalised
    L_V = ½ E[max((V - R)², (V_old + clip(V - V_old, ±ε) - R)²)]

with separate actor and critic networks (each its own cell) and Adam optimisers, gradients clipped per network.
Memory during an update: every sequence restarts from the hidden state the rollout stored at its first step
and is unrolled with gradients by ``MemoryNetwork.unroll`` through the cell by autograd (BPTT over the sequence;
the linear RTU's recurrence by a parallel prefix scan, ``cells/scan.py``, so a 64-step sequence costs a handful of
whole-sequence operations). For the RTU this is its exact RTRL gradient within the sequence (tests/test_ppo.py
checks the two equal), computed far cheaper than by carrying sensitivities; so ``mode`` rtrl and tbptt train the
RTU alike here. Hidden states are reset where episodes begin.

Continuous control (MuJoCo) normalises observations and rewards as CleanRL's continuous PPO does (gymnasium's
NormalizeObservation / NormalizeReward arithmetic, clipped to ±10), with the loop's normalisers, statistics shared
by the lanes; discrete tasks are not normalised.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..agents.base import Pending
from ..agents.policy import categorical, categorical_log_prob, gaussian, gaussian_log_prob
from ..engines import Engine, choose, native
from ..network import MemoryNetwork
from ..normalize import ObservationNormalizer, RewardScaler
from ..rng import MemberRandom

CLIP = 10.0
ROLLOUT = ("obs", "starts", "actions", "log_probs", "values", "rewards", "actor_hidden", "critic_hidden")


def initial_hidden(net: MemoryNetwork, batch: int) -> Tensor:
    """The cell's carried vector for ``batch`` sequences: the real pair [Re h, Im h] for the RTU."""
    return net.cell.initial_hidden().expand(batch, -1).clone()


def gae(
    rewards: Tensor, values: Tensor, dones: Tensor, next_value: Tensor, next_done: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and the TD errors δ_t they sum, both (T, B); ``dones[t]`` marks that o_t
    began a new episode, ``next_done`` that the observation after the rollout does."""
    not_done = 1.0 - torch.cat((dones[1:], next_done.unsqueeze(0)))
    following = torch.cat((values[1:], next_value.unsqueeze(0)))
    deltas = rewards + gamma * following * not_done - values
    advantages, last = torch.zeros_like(rewards), torch.zeros_like(next_value)
    for t in reversed(range(len(rewards))):
        last = deltas[t] + gamma * lam * not_done[t] * last
        advantages[t] = last
    return advantages, deltas


def to_sequences(tensor: Tensor, chunks: int) -> Tensor:
    """(T, E, ...) -> (T / chunks, E * chunks, ...): each env's rollout cut into ``chunks`` sequences."""
    T, E = tensor.shape[:2]
    return (
        tensor.reshape(chunks, T // chunks, E, *tensor.shape[2:])
        .transpose(0, 1)
        .reshape(T // chunks, chunks * E, *tensor.shape[2:])
    )


class PPO:
    """Batched PPO with a memory-network actor (logits, or a Gaussian mean with a state-independent log σ) and
    critic (module docstring). One member; its ``lanes`` environments are stepped by the training loop."""

    native: dict = {}  # network name -> native runner of the rollout (none in a checkpoint written before them)

    def __init__(
        self,
        config,
        obs_size: int,
        action_space: gym.Space,
        init_generators,
        action_random: MemberRandom,
        engine: Engine | None = None,
    ):
        self.config, self.random = config, action_random
        self.lanes, self.chunks = self.lanes_of(config), max(1, config.ppo_minibatches // config.ppo_num_envs)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        out_size = int(action_space.n) if self.discrete else int(action_space.shape[0])
        dtype, net = getattr(torch, config.dtype), config.network_kwargs()
        self.actor = MemoryNetwork(obs_size, out_size, generators=init_generators[0], **net).to(dtype)
        self.critic = MemoryNetwork(obs_size, 1, generators=init_generators[0], **net).to(dtype)
        self.log_std = None if self.discrete else nn.Parameter(torch.zeros(out_size, dtype=dtype))
        # the rollout of one environment steps each network by the native forward pass (``recur``), as one row
        self.native = {}
        if (engine or choose(config)).step == "native":
            for name, net in (("actor", self.actor), ("critic", self.critic)):
                flat = native.flatten_parameters(list(net.parameters()), population=False)
                self.native[name] = native.network(net, flat, single=True)
        actor_params = list(self.actor.parameters()) + ([] if self.discrete else [self.log_std])
        self.actor_optimizer = torch.optim.Adam(actor_params, lr=config.ppo_lr_actor, eps=1e-5, foreach=True)
        self.critic_optimizer = torch.optim.Adam(
            self.critic.parameters(), lr=config.ppo_lr_critic, eps=1e-5, foreach=True
        )
        self.networks = {"actor": self.actor, "critic": self.critic}
        self.memories: dict = {}  # no streaming memories: the rollout's hidden states live in ``hidden``
        self.hidden = {name: initial_hidden(net, self.lanes) for name, net in self.networks.items()}
        self.starts = torch.ones(self.lanes, dtype=torch.bool)  # the next observation begins an episode
        self.rollout: dict[str, list[Tensor]] = {key: [] for key in ROLLOUT}
        self.eval_hidden: Tensor | None = None
        self.td_error = torch.zeros(1, dtype=dtype)  # mean |δ| of the last rollout (NaN after a non-finite loss)

    @staticmethod
    def lanes_of(config) -> int:
        """Environments per member: ``ppo_num_envs``."""
        return config.ppo_num_envs

    def normalizers(self, config, obs_size: int) -> tuple[ObservationNormalizer | None, RewardScaler | None]:
        """Continuous control: CleanRL's clipped observation and reward normalisation, shared by the lanes;
        discrete tasks: none."""
        if self.discrete:
            return None, None
        return (
            ObservationNormalizer(1, obs_size, lanes=self.lanes, clip=CLIP),
            RewardScaler(1, config.gamma, lanes=self.lanes, clip=CLIP),
        )

    def log_prob(self, out: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """(log π(a|o), H(π(·|o))) for the actor's outputs, differentiable (``agents.policy``, as the rollout drew)."""
        if self.discrete:
            return categorical_log_prob(out, action)
        return gaussian_log_prob(out, self.log_std, action)

    @torch.no_grad()
    def _policy(self, out: Tensor, greedy: bool) -> tuple[Tensor, Tensor]:
        """(a, log π(a)) for every row of ``out``, drawn from the member's action stream (or greedy)."""
        rows = len(out)
        if self.discrete:
            return categorical(out, None if greedy else self.random.uniform(rows).reshape(rows, 1))[:2]
        noise = None if greedy else self.random.normal(rows * out.shape[-1]).reshape(out.shape)
        return gaussian(out, self.log_std, noise)[:2]

    def act(self, obs: Tensor, greedy: bool = False, learn: bool = True) -> Pending:
        """a_t for every lane, recording what the update needs in the rollout; with ``learn=False`` (evaluation)
        the actor runs on its own hidden state, one row per evaluation environment, and nothing is recorded."""
        if not learn:
            if self.eval_hidden is None:
                self.eval_hidden = initial_hidden(self.actor, len(obs))
            out, self.eval_hidden = self.actor.recur(obs, self.eval_hidden)
            return Pending(self._policy(out, greedy)[0])
        hidden = {name: MemoryNetwork.reset_memory(h, self.starts) for name, h in self.hidden.items()}
        out, self.hidden["actor"] = self._recur("actor", obs, hidden["actor"])
        value, self.hidden["critic"] = self._recur("critic", obs, hidden["critic"])
        action, log_prob = self._policy(out, greedy)
        step = (obs, self.starts, action, log_prob, value.squeeze(-1), None, hidden["actor"], hidden["critic"])
        for key, item in zip(ROLLOUT, step):
            if item is not None:
                self.rollout[key].append(item)
        return Pending(action)

    @torch.no_grad()
    def _recur(self, name: str, obs: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(out_t, hidden_t) of network ``name`` for the rollout's lanes: by the native forward pass where it runs
        (one environment), else by the network's own step."""
        runner = self.native.get(name)
        return runner.recur(obs, hidden) if runner is not None else self.networks[name].recur(obs, hidden)

    def learn(self, step: Pending, reward: Tensor, next_obs: Tensor, terminated: Tensor, done: Tensor) -> Tensor:
        """Record r_t (the rest of the transition ``step`` began is in the rollout already); after
        ``ppo_rollout_steps`` steps, update on the rollout. Returns the member's mean |δ| over the last rollout (its
        learning signal for progress reports and the loop's divergence check)."""
        self.rollout["rewards"].append(reward)
        self.starts = done.clone()
        if len(self.rollout["rewards"]) == self.config.ppo_rollout_steps:
            batch = {key: torch.stack(items) for key, items in self.rollout.items()}
            self.rollout = {key: [] for key in ROLLOUT}
            next_value = self._recur("critic", next_obs, self.hidden["critic"])[0].squeeze(-1)  # × 0 where done
            batch["advantages"], deltas = gae(
                batch["rewards"],
                batch["values"],
                batch["starts"].to(reward.dtype),
                next_value,
                self.starts.to(reward.dtype),
                self.config.gamma,
                self.config.ppo_gae_lambda,
            )
            batch["returns"] = batch["advantages"] + batch["values"]
            batch = {key: to_sequences(value, self.chunks) for key, value in batch.items()}
            losses = self.update(batch, batch["actor_hidden"][0], batch["critic_hidden"][0])
            finite = all(torch.isfinite(loss) for loss in losses)
            self.td_error = deltas.abs().mean().reshape(1) if finite else torch.full_like(self.td_error, torch.nan)
        return self.td_error

    def update(self, batch: dict[str, Tensor], actor_hidden: Tensor, critic_hidden: Tensor) -> tuple[Tensor, Tensor]:
        """``ppo_epochs`` passes over minibatches of sequences (each from its stored first hidden state); returns
        the last minibatch's (policy loss, value loss)."""
        config, sequences = self.config, batch["obs"].shape[1]
        per_minibatch, clip = sequences // config.ppo_minibatches, config.ppo_clip
        for _ in range(config.ppo_epochs):
            order = torch.argsort(self.random.uniform(sequences)[0])
            for start in range(0, sequences, per_minibatch):
                idx = order[start : start + per_minibatch]
                obs, starts = batch["obs"][:, idx], batch["starts"][:, idx]
                out = self.actor.unroll(obs, actor_hidden[idx], starts, rtrl=False)
                log_prob, entropy = self.log_prob(out, batch["actions"][:, idx])
                value = self.critic.unroll(obs, critic_hidden[idx], starts, rtrl=False).squeeze(-1)
                ratio = (log_prob - batch["log_probs"][:, idx]).exp()
                adv = batch["advantages"][:, idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
                policy_loss = policy_loss - config.ppo_entropy_coeff * entropy.mean()
                old_value, returns = batch["values"][:, idx], batch["returns"][:, idx]
                clipped = old_value + (value - old_value).clamp(-clip, clip)
                value_loss = 0.5 * torch.max((value - returns) ** 2, (clipped - returns) ** 2).mean()
                for loss, optimizer in ((policy_loss, self.actor_optimizer), (value_loss, self.critic_optimizer)):
                    optimizer.zero_grad()
                    loss.backward()
                    params = [p for group in optimizer.param_groups for p in group["params"]]
                    nn.utils.clip_grad_norm_(params, config.ppo_max_grad_norm)
                    optimizer.step()
        return policy_loss.detach(), value_loss.detach()

    def reset_memory(self, mask: Tensor | None = None) -> None:
        """Evaluation memory: forget it (None: a new evaluation begins) or zero the rows in ``mask``."""
        if mask is None or self.eval_hidden is None:
            self.eval_hidden = None
        else:
            self.eval_hidden = MemoryNetwork.reset_memory(self.eval_hidden, mask)

    def trace_norms(self) -> dict[str, Tensor]:
        return {}  # no eligibility traces
