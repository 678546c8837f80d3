"""Batched PPO baseline (Schulman et al. 2017) with memory networks, as in the paper (docs/method.md §5).

Not a streaming agent: it collects ``rollout_steps`` steps from ``num_envs`` environments, then runs
``epochs`` passes of clipped-surrogate updates over minibatches of *sequences*:

    A_t = GAE(γ, λ_GAE) of δ_t = r_t + γ V(o_{t+1}) (1 - d_{t+1}) - V(o_t),   R_t = A_t + V_old(o_t)
    L_π = -E[min(ρ_t Â_t, clip(ρ_t, 1 ± ε) Â_t)] - η H,   ρ_t = π(a_t|o_t) / π_old(a_t|o_t),  Â normalised
    L_V = ½ E[max((V - R)², (V_old + clip(V - V_old, ±ε) - R)²)]

with separate actor and critic networks (each its own cell) and Adam optimisers, gradients clipped per network.
Memory during an update: every sequence restarts from the hidden state the rollout stored at its first step
and is unrolled with gradients by ``MemoryNetwork.unroll`` -- the RTU's exact RTRL (``mode="rtrl"``) or autograd
BPTT through the cell (``mode="tbptt"``: GRU, FFN, or the RTU's real-pair recurrence). Hidden states are reset
where episodes begin. Continuous control (MuJoCo) normalises as CleanRL's continuous PPO does
(``ContinuousNormalizer``).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from ..envs import episode_success
from ..events import EpisodeEnd, EvaluationEnd, Progress, RunEnd
from ..network import MemoryNetwork
from ..normalize import RunningMeanVar

CLIP = 10.0


class ContinuousNormalizer:
    """CleanRL's continuous-control normalisation, statistics shared by the E environments (Welford):

        o ← clip((o - mean(o)) / sqrt(var(o) + ε), ±10)         updated with every observation while training
        G ← γ G + r  per environment (0 after its episode ends),   r ← clip(r / sqrt(var(G) + ε), ±10)

    Evaluation uses the observation statistics frozen; rewards are scaled for learning only."""

    def __init__(self, num_envs: int, obs_size: int, gamma: float, eps: float = 1e-8):
        self.obs_stats, self.return_stats = RunningMeanVar(1, (obs_size,)), RunningMeanVar(1)
        self.discounted_return = np.zeros(num_envs)
        self.gamma, self.eps, self.frozen = gamma, eps, False

    def observation(self, obs: Tensor) -> Tensor:
        values = obs.numpy().astype(np.float64)
        if not self.frozen:
            for row in values:
                self.obs_stats.update(row[None])
        out = (values - self.obs_stats.mean) / np.sqrt(self.obs_stats.var + self.eps)
        return torch.from_numpy(out.clip(-CLIP, CLIP)).to(obs.dtype)

    def reward(self, reward: Tensor, done: Tensor) -> Tensor:
        values = reward.numpy().astype(np.float64)
        self.discounted_return = self.gamma * self.discounted_return + values
        for g in self.discounted_return:
            self.return_stats.update(np.array([g]))
        scaled = values / np.sqrt(self.return_stats.var[0] + self.eps)
        self.discounted_return = np.where(done.numpy(), 0.0, self.discounted_return)
        return torch.from_numpy(scaled.clip(-CLIP, CLIP)).to(reward.dtype)


class PPONetworks:
    """Actor (logits, or Gaussian mean with a state-independent log σ) and critic, each a MemoryNetwork."""

    def __init__(self, config, obs_size: int, action_space: gym.Space, generator: torch.Generator):
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        out_size = int(action_space.n) if self.discrete else int(action_space.shape[0])
        kwargs = config.network_kwargs()
        self.actor = MemoryNetwork(obs_size, out_size, generators=generator, **kwargs)
        self.critic = MemoryNetwork(obs_size, 1, generators=generator, **kwargs)
        self.log_std = None if self.discrete else nn.Parameter(torch.zeros(out_size))
        actor_params = list(self.actor.parameters()) + ([] if self.discrete else [self.log_std])
        self.actor_optimizer = torch.optim.Adam(actor_params, lr=config.ppo_lr_actor, eps=1e-5)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.ppo_lr_critic, eps=1e-5)
        self.networks = {"actor": self.actor, "critic": self.critic}

    def distribution(self, out: Tensor) -> torch.distributions.Distribution:
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Independent(torch.distributions.Normal(out, self.log_std.exp()), 1)


def initial_hidden(net: MemoryNetwork, batch: int) -> Tensor:
    """The cell's carried vector for ``batch`` sequences: the real pair [Re h, Im h] for the RTU."""
    return net.cell.initial_hidden().expand(batch, -1).clone()


def gae(
    rewards: Tensor, values: Tensor, dones: Tensor, next_value: Tensor, next_done: Tensor, gamma: float, lam: float
) -> Tensor:
    """Generalised advantage estimates (T, B); ``dones[t]`` marks that o_t began a new episode."""
    advantages, last = torch.zeros_like(rewards), torch.zeros_like(next_value)
    for t in reversed(range(len(rewards))):
        not_done = 1.0 - (next_done if t == len(rewards) - 1 else dones[t + 1])
        following = next_value if t == len(rewards) - 1 else values[t + 1]
        delta = rewards[t] + gamma * following * not_done - values[t]
        last = delta + gamma * lam * not_done * last
        advantages[t] = last
    return advantages


def update(nets: PPONetworks, batch: dict, config) -> dict[str, float]:
    """``epochs`` passes over minibatches of sequences; returns the last minibatch's losses."""
    sequences = batch["obs"].shape[1]
    per_minibatch = sequences // config.ppo_minibatches
    generator = batch["generator"]
    for _ in range(config.ppo_epochs):
        order = torch.randperm(sequences, generator=generator)
        for start in range(0, sequences, per_minibatch):
            idx = order[start : start + per_minibatch]
            out = nets.actor.unroll(batch["obs"][:, idx], batch["actor_hidden"][idx], batch["starts"][:, idx])
            value = nets.critic.unroll(
                batch["obs"][:, idx], batch["critic_hidden"][idx], batch["starts"][:, idx]
            ).squeeze(-1)
            dist = nets.distribution(out)
            ratio = (dist.log_prob(batch["actions"][:, idx]) - batch["log_probs"][:, idx]).exp()
            adv = batch["advantages"][:, idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            clip = config.ppo_clip
            policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
            policy_loss = policy_loss - config.ppo_entropy_coeff * dist.entropy().mean()
            old_value, returns = batch["values"][:, idx], batch["returns"][:, idx]
            clipped = old_value + (value - old_value).clamp(-clip, clip)
            value_loss = 0.5 * torch.max((value - returns) ** 2, (clipped - returns) ** 2).mean()
            for loss, optimizer in ((policy_loss, nets.actor_optimizer), (value_loss, nets.critic_optimizer)):
                optimizer.zero_grad()
                loss.backward()
                params = [p for g in optimizer.param_groups for p in g["params"]]
                nn.utils.clip_grad_norm_(params, config.ppo_max_grad_norm)
                optimizer.step()
    return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item()}


def to_sequences(tensor: Tensor, chunks: int) -> Tensor:
    """(T, E, ...) -> (T / chunks, E * chunks, ...): each env's rollout cut into ``chunks`` sequences."""
    T, E = tensor.shape[:2]
    return (
        tensor.reshape(chunks, T // chunks, E, *tensor.shape[2:])
        .transpose(0, 1)
        .reshape(T // chunks, chunks * E, *tensor.shape[2:])
    )


def train_ppo(config, make_env, seeds: tuple[int, int, int, int]):
    """The PPO loop: yields the same events as the streaming loop (EpisodeEnd, Progress, EvaluationEnd, RunEnd);
    ``step`` counts environment steps over all ``ppo_num_envs`` environments."""
    import time

    init_seed, action_seed, env_seed, eval_seed = seeds
    E, T = config.ppo_num_envs, config.ppo_rollout_steps
    chunks = max(1, config.ppo_minibatches // E)
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(config) for _ in range(E)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    obs_size = gym.spaces.flatdim(envs.single_observation_space)
    nets = PPONetworks(config, obs_size, envs.single_action_space, torch.Generator().manual_seed(init_seed))
    sampler = torch.Generator().manual_seed(action_seed)
    dtype = torch.float32

    def act(out: Tensor, greedy: bool = False) -> Tensor:
        if nets.discrete:
            return out.argmax(-1) if greedy else torch.multinomial(out.softmax(-1), 1, generator=sampler).squeeze(-1)
        return out if greedy else out + nets.log_std.detach().exp() * torch.randn(out.shape, generator=sampler)

    normalizer = None if nets.discrete else ContinuousNormalizer(E, obs_size, config.gamma)

    def observe(raw) -> Tensor:
        obs = torch.as_tensor(raw, dtype=dtype).reshape(len(raw), -1)
        return obs if normalizer is None else normalizer.observation(obs)

    obs = observe(envs.reset(seed=[env_seed + i for i in range(E)])[0])
    starts = torch.ones(E, dtype=torch.bool)
    hidden = {name: initial_hidden(net, E) for name, net in nets.networks.items()}
    episode_return, episode_length, episodes = np.zeros(E), np.zeros(E, dtype=np.int64), 0
    started, step, iterations = time.perf_counter(), 0, config.steps // (E * T)
    envs_actions = (lambda a: a.numpy()) if nets.discrete else (lambda a: a.double().numpy())
    try:
        for iteration in range(1, iterations + 1):
            keys = ("obs", "starts", "actions", "log_probs", "values", "rewards", "actor_hidden", "critic_hidden")
            rollout = {k: [] for k in keys}
            for _ in range(T):
                hidden = {name: MemoryNetwork.reset_memory(h, starts) for name, h in hidden.items()}
                rollout["actor_hidden"].append(hidden["actor"])
                rollout["critic_hidden"].append(hidden["critic"])
                out, hidden["actor"] = nets.actor.recur(obs, hidden["actor"])
                value, hidden["critic"] = nets.critic.recur(obs, hidden["critic"])
                action = act(out)
                with torch.no_grad():
                    log_prob = nets.distribution(out).log_prob(action)
                next_obs, reward, terminated, truncated, infos = envs.step(envs_actions(action))
                done = terminated | truncated
                learn_reward = torch.as_tensor(reward, dtype=dtype)
                if normalizer is not None:
                    learn_reward = normalizer.reward(learn_reward, torch.as_tensor(done))
                for key, item in zip(keys[:6], (obs, starts, action, log_prob, value.squeeze(-1), learn_reward)):
                    rollout[key].append(item)
                step += E
                episode_return += reward
                episode_length += 1
                for i in np.flatnonzero(done):
                    final = infos.get("final_info", {})
                    success = episode_success(
                        {
                            key: final[key][i]
                            for key in ("is_success", "success_rate")
                            if key in final and final["_" + key][i]
                        }
                    )
                    yield EpisodeEnd(step, 0, episodes, float(episode_return[i]), int(episode_length[i]), success)
                    episodes += 1
                    episode_return[i], episode_length[i] = 0.0, 0
                obs = observe(next_obs)
                starts = torch.as_tensor(done)
            batch = {k: torch.stack(v) for k, v in rollout.items()}
            next_value = nets.critic.recur(obs, MemoryNetwork.reset_memory(hidden["critic"], starts))[0]
            advantages = gae(
                batch["rewards"],
                batch["values"],
                batch["starts"].to(dtype),
                next_value.squeeze(-1),
                starts.to(dtype),
                config.gamma,
                config.ppo_gae_lambda,
            )
            batch["advantages"], batch["returns"] = advantages, advantages + batch["values"]
            batch = {k: to_sequences(v, chunks) for k, v in batch.items()}
            batch["actor_hidden"], batch["critic_hidden"] = batch["actor_hidden"][0], batch["critic_hidden"][0]
            batch["generator"] = sampler
            losses = update(nets, batch, config)
            elapsed = time.perf_counter() - started
            if not all(np.isfinite(v) for v in losses.values()):
                yield RunEnd("diverged", step, elapsed, f"non-finite PPO loss at step {step}; stopped")
                return
            yield Progress(step, config.steps, 1, step / max(elapsed, 1e-9), np.zeros(1))
            if config.time_limit is not None and elapsed > config.time_limit:
                yield RunEnd("timeout", step, elapsed, f"time limit of {config.time_limit:g} s reached at step {step}")
                return
        if config.eval_episodes:
            if normalizer is not None:
                normalizer.frozen = True
            yield evaluate(nets, make_env(config), config.eval_episodes, eval_seed, act, observe)
        yield RunEnd("completed", step, time.perf_counter() - started)
    finally:
        envs.close()


def evaluate(nets: PPONetworks, env: gym.Env, episodes: int, seed: int, act, observe) -> "EvaluationEnd":
    """Greedy episodes (argmax / the Gaussian mean) with no learning; ``observe`` turns a batch of raw
    observations into the network's input."""

    returns, successes = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        hidden = {name: initial_hidden(net, 1) for name, net in nets.networks.items()}
        total, done, info = 0.0, False, {}
        while not done:
            out, hidden["actor"] = nets.actor.recur(observe(obs[None]), hidden["actor"])
            action = act(out, greedy=True)[0]
            obs, reward, terminated, truncated, info = env.step(action.numpy() if not nets.discrete else int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        if episode_success(info) is not None:
            successes.append(episode_success(info))
    env.close()
    return EvaluationEnd(0, returns, successes)
