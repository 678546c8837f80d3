"""Throughput of streaming RTU-RTRL agents on this machine, everything measured in one run.

1. One RTU-RTRL Stream AC(λ) agent on MemoryChain (``rtu_core.train``, eager and ``compile=True``) vs the
   reference a user would write: a plain eager-autograd Stream AC(λ) with a feed-forward network of the same
   width (below, ~60 lines).
2. Aggregate agent-steps/s of populations P = 1, 8, 64, 256 (eager and compiled), and the memory each agent
   holds (parameters, eligibility traces, RTRL state).
3. Time per step vs RTU size n = 32 ... 1024 (width 128), eager and compiled: the RTRL cost is linear in the
   parameters, a dense RNN's RTRL would cost O(n^2 #params); log-log plot to ``assets/scaling.png``.

Rates are taken after each run's first tenth of steps (warm-up, compiling).

    python benchmarks/throughput.py                      # ~25 minutes
    python benchmarks/throughput.py --quick              # smaller sizes, a minute
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rtu_core import Progress, TrainConfig, train
from rtu_core.envs import MEMORY_CHAIN_ID
from rtu_core.training import Run

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CHAIN = 8


class ReferenceStreamAC:
    """Stream AC(λ) as a user would write it with eager autograd (stream-x style): actor and critic MLPs
    (Linear -> LayerNorm -> LeakyReLU, twice, then a linear head), eligibility traces per parameter,
    ObGD step sizes. No memory: the same width as our feature layer and RTU."""

    def __init__(self, obs_size: int, n_actions: int, width: int, gamma=0.99, lamda=0.8, lr=1.0,
                 kappa_actor=1.5, kappa_critic=1.0, entropy_coeff=0.01):
        def mlp(out: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(obs_size, width), nn.LayerNorm(width, elementwise_affine=False),
                                 nn.LeakyReLU(), nn.Linear(width, width), nn.LayerNorm(width, elementwise_affine=False),
                                 nn.LeakyReLU(), nn.Linear(width, out))
        self.actor, self.critic = mlp(n_actions), mlp(1)
        self.z_actor = [torch.zeros_like(p) for p in self.actor.parameters()]
        self.z_critic = [torch.zeros_like(p) for p in self.critic.parameters()]
        self.gamma, self.lamda, self.lr = gamma, lamda, lr
        self.kappa_actor, self.kappa_critic, self.entropy_coeff = kappa_actor, kappa_critic, entropy_coeff

    def act(self, obs: torch.Tensor) -> int:
        logits = self.actor(obs)
        dist = torch.distributions.Categorical(logits=logits)
        action = dist.sample()
        self.log_prob, self.entropy, self.value = dist.log_prob(action), dist.entropy(), self.critic(obs).squeeze()
        return int(action)

    def _obgd(self, params, traces, grads, td_error: float, kappa: float) -> None:
        with torch.no_grad():
            for z, g in zip(traces, grads):
                z.mul_(self.gamma * self.lamda).add_(g)
            bound = self.lr * kappa * max(abs(td_error), 1.0) * sum(z.abs().sum() for z in traces)
            step = self.lr / bound if bound > 1 else self.lr
            for p, z in zip(params, traces):
                p.add_(step * td_error * z)

    def learn(self, reward: float, next_obs: torch.Tensor, terminated: bool, done: bool) -> None:
        with torch.no_grad():
            next_value = 0.0 if terminated else float(self.critic(next_obs))
        td_error = reward + self.gamma * next_value - self.value.item()
        actor_params, critic_params = list(self.actor.parameters()), list(self.critic.parameters())
        actor_objective = self.log_prob + self.entropy_coeff * np.sign(td_error) * self.entropy
        self._obgd(actor_params, self.z_actor, torch.autograd.grad(actor_objective, actor_params), td_error,
                   self.kappa_actor)
        self._obgd(critic_params, self.z_critic, torch.autograd.grad(self.value, critic_params), td_error,
                   self.kappa_critic)
        if done:
            for z in self.z_actor + self.z_critic:
                z.zero_()


def reference_steps_per_second(width: int, steps: int, seed: int = 0) -> float:
    torch.manual_seed(seed)
    env = gym.make(MEMORY_CHAIN_ID, chain_length=CHAIN)
    agent = ReferenceStreamAC(gym.spaces.flatdim(env.observation_space), int(env.action_space.n), width)
    obs, _ = env.reset(seed=seed)
    started = time.perf_counter()
    for _ in range(steps):
        action = agent.act(torch.as_tensor(obs, dtype=torch.float32))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.learn(float(reward), torch.as_tensor(next_obs, dtype=torch.float32), terminated, terminated or truncated)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return steps / (time.perf_counter() - started)


def config(hidden: int, width: int, steps: int, population: int = 1, compile: bool = False) -> TrainConfig:
    return TrainConfig(chain_length=CHAIN, hidden_size=hidden, width=width, steps=steps, population=population,
                       eval_episodes=0, progress_every=max(steps // 10, 1), compile=compile)


def agent_steps_per_second(cfg: TrainConfig) -> float:
    """Agent-steps/s of ``train(cfg)`` (all members) after its first tenth of the steps, which absorbs
    warm-up (and, with ``compile``, the seconds torch.compile takes)."""
    first = None
    for event in train(cfg):
        if isinstance(event, Progress):
            if first is None:
                first = (event.step, time.perf_counter())
            last = (event.step, time.perf_counter())
    return (last[0] - first[0]) * cfg.population / (last[1] - first[1])


def bytes_per_agent(cfg: TrainConfig) -> float:
    """Parameters, optimiser state (eligibility traces) and memories (RTRL state) of a population, per agent."""
    agent = Run(cfg).agent
    parameters = sum(p.numel() * p.element_size() for net in agent.networks.values() for p in net.parameters())
    memories = [t for m in agent.memories.values() for t in (m if isinstance(m, tuple) else (m,))]
    # each parameter has one eligibility trace of its size (allocated at the first update)
    return (2 * parameters + sum(t.numel() * t.element_size() for t in memories)) / cfg.population


def rtu_parameters(n: int, width: int) -> int:
    return 2 * n + 2 * n * width  # ν_log, θ_log, B_real, B_imag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and budgets (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = 600 if args.quick else 3000
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread, "
          f"torch {torch.__version__}, MemoryChain L={CHAIN}, Stream AC(λ), float32")

    print("\n1. one agent: ours (RTU, exact RTRL; eager, and compiled with --compile) vs a plain eager-autograd "
          "Stream AC(λ) with an FFN")
    for width in ((32,) if args.quick else (32, 128)):
        ours, compiled, ref = [], [], []
        for _ in range(2):  # interleaved, best of two: all see the same machine load
            ref.append(reference_steps_per_second(width, steps))
            ours.append(agent_steps_per_second(config(width, width, steps)))
            compiled.append(agent_steps_per_second(config(width, width, 2 * steps, compile=True)))
        print(f"   width {width:4d}: reference FFN {max(ref):7.1f} steps/s | ours eager {max(ours):7.1f} "
              f"({max(ours) / max(ref):.2f}x) | ours compiled {max(compiled):7.1f} ({max(compiled) / max(ref):.2f}x; "
              f"goal >= 1.5x)")

    print("\n2. populations (RTU-RTRL 32 units, width 32): aggregate agent-steps/s and memory per agent")
    base = {}
    for P in ((1, 8, 64) if args.quick else (1, 8, 64, 256)):
        cells = []
        for compile in (False, True):
            cfg = config(32, 32, max(steps // max(P // 8, 1), 300), P, compile)
            rate = agent_steps_per_second(cfg)
            base.setdefault(compile, rate)
            cells.append(f"{'compiled' if compile else 'eager'} {rate:9.1f} = {rate / base[compile]:5.1f} x P=1")
        print(f"   P = {P:4d}: " + " | ".join(cells) + f"   ({bytes_per_agent(cfg) / 1024:.1f} KiB per agent)")

    print("\n3. time per step vs RTU size (width 128)")
    sizes = (32, 64, 128) if args.quick else (32, 64, 128, 256, 512, 1024)
    times = {False: [], True: []}
    for n in sizes:
        for compile in (False, True):
            cfg = config(n, 128, max(steps // max(n // 128, 1), 300), compile=compile)
            times[compile].append(1.0 / agent_steps_per_second(cfg))
        print(f"   n = {n:5d}: eager {1000 * times[False][-1]:7.2f} ms/step, compiled {1000 * times[True][-1]:7.2f} "
              f"ms/step, {rtu_parameters(n, 128):9,d} RTU parameters")
    params = np.array([rtu_parameters(n, 128) for n in sizes], float)
    for compile, label in ((False, "eager"), (True, "compiled")):
        slope = np.polyfit(np.log(params), np.log(times[compile]), 1)[0]
        upper = np.polyfit(np.log(params[-3:]), np.log(times[compile][-3:]), 1)[0]
        print(f"   {label}: log-log slope of time vs parameters {slope:.2f} over all sizes, {upper:.2f} over the "
              "largest three")
        # cost = fixed per-step overhead + a part linear in the parameters: the log-log slope nears 1 only
        # once the linear part dominates, so also report the affine fit and how well it holds
        per_param, fixed = np.polyfit(params, times[compile], 1)
        worst = np.max(np.abs(fixed + per_param * params - times[compile]) / times[compile])
        print(f"   {label}: affine fit t = {1000 * fixed:.2f} ms + {1e6 * per_param:.1f} ms per million parameters "
              f"(worst misfit {100 * worst:.0f}%)")
    path = Path(tempfile.gettempdir()) / "scaling_quick.png" if args.quick else ASSETS / "scaling.png"
    plot_scaling(np.array(sizes), params, {k: np.array(v) for k, v in times.items()}, path)


def plot_scaling(sizes, params, times: dict[bool, np.ndarray], path: Path) -> None:
    """Measured time per step vs parameters (eager and compiled), and a dense RNN's RTRL cost from the smallest size.

    Dense RTRL keeps ∂h/∂θ for every (unit, parameter) pair: n x #params numbers updated with an n x n
    Jacobian each step, O(n^2 #params) work vs the RTU's O(#params). Scaled so both agree at the smallest n."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dense_params = sizes ** 2 + sizes * 128
    dense = times[True][0] * (sizes ** 2 * dense_params) / (sizes[0] ** 2 * dense_params[0])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.loglog(params, 1000 * times[False], "o-", label="RTU + exact RTRL, eager (measured, whole agent step)")
    ax.loglog(params, 1000 * times[True], "^-", label="RTU + exact RTRL, compiled (measured, whole agent step)")
    ax.loglog(params, 1000 * times[True][-1] * params / params[-1], "k:", label="slope 1 (linear in #params)")
    ax.loglog(params, 1000 * dense, "s--", color="tab:red", label="dense-RNN RTRL, O(n² #params) (analytic)")
    for n, p, t in zip(sizes, params, times[False]):
        ax.annotate(f"n={n}", (p, 1000 * t), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xlabel("recurrent parameters")
    ax.set_ylabel("ms per agent step")
    ax.set_title("Streaming step cost vs RTU size (Stream AC, width 128)")
    ax.grid(True, which="major", alpha=0.3)
    ax.minorticks_off()
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"   plot: {path}")


if __name__ == "__main__":
    main()
