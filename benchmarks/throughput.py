"""Throughput of streaming RTU-RTRL agents at the paper's size, measured in one run against a plain reference.

1. Memory bandwidth of this core (a large tensor copy) and, from it, the bound on agent-steps/s: every agent-step
   must read and write each network's parameters, eligibility traces and RTRL sensitivities.
2. One agent at the paper's size (RTU 192 units, feature width 128, MemoryChain L = 16), QRC(λ) and Stream AC(λ):
   the native step (the default) and the eager step, vs the reference a user
   would write: a plain eager-autograd Stream AC(λ) with a feed-forward network of width 128 (below, ~60 lines);
   and the native agent's act + learn alone, without the training loop around it (where a single agent's time goes).
3. Populations of 32 (agent-steps/s of one process), native and eager, each as a fraction of the bound; the same
   for the GRU and FFN TBPTT(1) baselines; and the wall time the paper's MemoryChain figure (7 lengths x 5 seeds x
   500k steps per method) would take on 2 processes: from one process's rate doubled, and from two processes
   measured side by side (as the sweeps run them, sharing the memory bus), each of the figure's four rows.
4. With ``--scaling``: time per step vs RTU size n = 32 ... 1024 (width 128); log-log plot to ``assets/scaling.png``.

Rates are taken after each run's first tenth of steps (warm-up). One torch thread.

    python benchmarks/throughput.py                # ~10 minutes
    python benchmarks/throughput.py --quick        # shorter runs, a couple of minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rtu_core import Progress, TrainConfig, train
from rtu_core.envs import MEMORY_CHAIN_ID
from rtu_core.training import Run

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CHAIN = 16


class ReferenceStreamAC:
    """Stream AC(λ) as a user would write it with eager autograd (stream-x style): actor and critic MLPs
    (Linear -> LayerNorm -> LeakyReLU, twice, then a linear head), eligibility traces per parameter,
    ObGD step sizes. No memory: the same width as our feature layer and RTU."""

    def __init__(
        self,
        obs_size: int,
        n_actions: int,
        width: int,
        gamma=0.99,
        lamda=0.8,
        lr=1.0,
        kappa_actor=1.5,
        kappa_critic=1.0,
        entropy_coeff=0.01,
    ):
        def mlp(out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(obs_size, width),
                nn.LayerNorm(width, elementwise_affine=False),
                nn.LeakyReLU(),
                nn.Linear(width, width),
                nn.LayerNorm(width, elementwise_affine=False),
                nn.LeakyReLU(),
                nn.Linear(width, out),
            )

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
        self._obgd(
            actor_params, self.z_actor, torch.autograd.grad(actor_objective, actor_params), td_error, self.kappa_actor
        )
        self._obgd(
            critic_params, self.z_critic, torch.autograd.grad(self.value, critic_params), td_error, self.kappa_critic
        )
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


def config(hidden: int, width: int, steps: int, population: int = 1, engine: str = "auto") -> TrainConfig:
    return TrainConfig(
        chain_length=CHAIN,
        hidden_size=hidden,
        width=width,
        steps=steps,
        population=population,
        eval_episodes=0,
        progress_every=max(steps // 10, 1),
        engine=engine,
    )


def agent_steps_per_second(cfg: TrainConfig) -> float:
    """Agent-steps/s of ``train(cfg)`` (all members) from its first progress event (``cfg.progress_every`` steps
    in) to its last, which leaves out warm-up."""
    if cfg.steps <= cfg.progress_every:
        raise ValueError(
            f"timing needs steps > progress_every (steps {cfg.steps}, progress_every {cfg.progress_every})"
        )
    first = None
    for event in train(cfg):
        if isinstance(event, Progress):
            if first is None:
                first = (event.step, time.perf_counter())
            last = (event.step, time.perf_counter())
    return (last[0] - first[0]) * cfg.population / (last[1] - first[1])


def _steps_per_second_from(start_at: float, cfg: TrainConfig) -> float:
    """``agent_steps_per_second(cfg)`` begun at the wall-clock time ``start_at`` (after building the agent once, so
    that the extension is loaded), for processes started side by side."""
    torch.set_num_threads(1)
    Run(dataclasses.replace(cfg, steps=10))
    time.sleep(max(0.0, start_at - time.time()))
    return agent_steps_per_second(cfg)


def side_by_side(cfg: TrainConfig, processes: int = 2, start_in: float = 15.0) -> list[float]:
    """Each process's agent-steps/s when ``processes`` processes run ``train(cfg)`` at the same time, as the sweeps
    run populations one per core: they share the memory bus, which a single process has to itself. They start
    together ``start_in`` seconds from now, by when every process has imported torch and built its agent."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        start_at = time.time() + start_in
        return list(pool.map(_steps_per_second_from, [start_at] * processes, [cfg] * processes))


def agent_alone_steps_per_second(cfg: TrainConfig) -> float:
    """Steps/s of the agent's own ``act`` + ``learn`` (native step included), with nothing around them: one
    observation from the environment's reset, reward 0, an episode end every CHAIN + 1 steps (the memory resets, as
    on MemoryChain). What ``train`` adds to this (environment, normalisers, conversions, events) is the loop's part
    of a step. Timed after the first tenth of the steps."""
    run = Run(cfg)
    agent, P = run.agent, cfg.population
    obs = run.observe(run.envs.reset())
    reward, no = torch.zeros(P), torch.zeros(P, dtype=torch.bool)
    started = 0.0
    for t in range(cfg.steps):
        if t == cfg.steps // 10:
            started = time.perf_counter()
        done = no if (t + 1) % (CHAIN + 1) else ~no
        agent.learn(agent.act(obs), reward, obs, done, done)
    return (cfg.steps - cfg.steps // 10) * P / (time.perf_counter() - started)


def step_breakdown(cfg: TrainConfig) -> dict[str, float]:
    """Microseconds per step of each part of ``train(cfg)``'s step, timed inside the running loop (the agent's act
    and learn, the environment, the observation normaliser, the reward scaler, the action conversion; 'rest': the
    loop's own bookkeeping and events), from one run after a short warm-up run. Parts measured apart run faster
    than here: in the loop they share the caches with each other."""
    from rtu_core.agents import AGENTS
    from rtu_core.training import make_population

    spent: dict[str, float] = {}
    agent_class, env_class = AGENTS[cfg.agent], type(make_population([cfg], [0]))
    parts = {"act": (agent_class, "act"), "learn": (agent_class, "learn"), "environment": (env_class, "step")}
    parts |= {"observation normaliser": (Run, "observe"), "reward scaler": (Run, "scale")}
    parts |= {"actions to the environment": (Run, "env_actions")}
    originals = {name: getattr(owner, method) for name, (owner, method) in parts.items()}

    def timed(name, function):
        def run(*args, **kwargs):
            started = time.perf_counter()
            result = function(*args, **kwargs)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
            return result

        return run

    try:
        for name, (owner, method) in parts.items():
            setattr(owner, method, timed(name, originals[name]))
        list(train(dataclasses.replace(cfg, steps=max(cfg.steps // 10, 100))))
        spent.clear()
        started = time.perf_counter()
        list(train(cfg))
        total = time.perf_counter() - started
    finally:
        for name, (owner, method) in parts.items():
            setattr(owner, method, originals[name])
    micro = 1e6 / cfg.steps
    return {**{name: spent.get(name, 0.0) * micro for name in parts}, "rest": (total - sum(spent.values())) * micro}


def rtu_parameters(n: int, width: int) -> int:
    return 2 * n + 2 * n * width  # ν_log, θ_log, B_real, B_imag


def paper_config(agent: str, steps: int, population: int = 1, **overrides) -> TrainConfig:
    """The paper's network (RTU 192, width 128; the MemoryChain presets) on MemoryChain L = 16."""
    return TrainConfig(
        agent=agent,
        chain_length=16,
        steps=steps,
        population=population,
        eval_episodes=0,
        progress_every=max(steps // 10, 1),
        **overrides,
    )


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes per second moved by a large tensor copy (read + write), best of ``repeats``."""
    source = torch.ones(megabytes * 2**20 // 4)
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - started)
    return 2 * source.numel() * 4 / best


def traffic_per_agent_step(cfg: TrainConfig) -> float:
    """Bytes one agent-step must at least read and write: each network's parameters, eligibility traces and RTRL
    state (hidden state and sensitivities), each read once and written once."""
    agent = Run(cfg).agent
    parameters = sum(p.numel() * p.element_size() for net in agent.networks.values() for p in net.parameters())
    memories = [t for m in agent.memories.values() for t in (m if isinstance(m, tuple) else (m,))]
    state = sum(t.numel() * t.element_size() for t in memories)
    return 2 * (2 * parameters + state) / cfg.population


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--scaling", action="store_true", help="also time per step vs RTU size (slow)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = 1000 if args.quick else 3000
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread, "
        f"torch {torch.__version__}, MemoryChain L=16, float32, RTU 192 units, feature width 128"
    )

    bandwidth = copy_bandwidth()
    traffic = traffic_per_agent_step(paper_config("qrc", 100))
    bound = bandwidth / traffic
    print(
        f"\n1. copy bandwidth {bandwidth / 1e9:.1f} GB/s; an agent-step moves >= {traffic / 1e6:.2f} MB "
        f"(parameters, traces, RTRL state of both networks, read and written) -> bound {bound:.0f} agent-steps/s"
    )

    print("\n2. one agent vs the reference (plain eager-autograd Stream AC(λ), FFN width 128)")
    reference = max(reference_steps_per_second(128, steps) for _ in range(2))
    print(f"   reference: {reference:.0f} steps/s")
    single = {}
    for agent in ("qrc", "stream_ac"):
        for name, overrides in {"native": {}, "eager": dict(engine="eager")}.items():
            rate = max(agent_steps_per_second(paper_config(agent, steps, **overrides)) for _ in range(2))
            single[agent, name] = rate
            print(
                f"   {agent:9s} {name:8s} {rate:7.0f} steps/s = {rate / reference:5.2f}x reference "
                f"({100 * rate / bound:3.0f}% of the bound){'   target >= 3x' if name == 'native' else ''}"
            )
        alone = max(agent_alone_steps_per_second(paper_config(agent, steps)) for _ in range(2))
        loop = 1 - single[agent, "native"] / alone  # share of a train() step spent outside act + learn
        print(
            f"   {agent:9s} native, the agent's act + learn alone: {alone:7.0f} steps/s = {alone / reference:5.2f}x "
            f"reference; the loop around it (environment, normalisers, events) takes {100 * loop:.0f}% of a step"
        )
        parts = step_breakdown(paper_config(agent, 2 * steps))
        print(
            f"   {agent:9s} native, where a train() step's {sum(parts.values()):.0f} µs go: "
            + ", ".join(f"{name} {us:.0f}" for name, us in parts.items())
        )

    print("\n3. populations of 32 (agent-steps/s of one process)")
    population = {}
    for agent in ("qrc", "stream_ac"):
        for name, overrides in {"native": {}, "eager": dict(engine="eager")}.items():
            n = max(steps // 10, 100) if name == "native" else max(steps // 30, 50)
            rate = agent_steps_per_second(paper_config(agent, n, 32, **overrides))
            population[agent, name] = rate
            print(
                f"   {agent:9s} {name:8s} P=32 {rate:7.0f} agent-steps/s = {rate / reference:5.2f}x reference "
                f"({100 * rate / bound:3.0f}% of the bound){'   target >= 5x' if name == 'native' else ''}"
            )
    print("\n   the TBPTT(1) baselines, QRC(λ), P=32 (GRU 192 units / FFN, width 128)")
    baselines = {}
    for cell in ("gru", "ffn"):
        for name, overrides in {"native": {}, "eager": dict(engine="eager")}.items():
            n = max(steps // 30, 50) if cell == "gru" else max(steps // 10, 100)
            rate = agent_steps_per_second(paper_config("qrc", n, 32, cell=cell, mode="tbptt", **overrides))
            baselines[cell, name] = rate
            print(f"   {cell:9s} {name:8s} P=32 {rate:7.0f} agent-steps/s = {rate / reference:5.2f}x reference")
    total = 7 * 5 * 500_000
    for cell in ("gru", "ffn"):
        hours = total / (2 * baselines[cell, "native"]) / 3600
        print(f"   the paper's MemoryChain figure, {cell.upper()}-TBPTT(1): {hours:.1f} h on 2 processes (native)")
    for agent in ("qrc", "stream_ac"):
        hours = total / (2 * population[agent, "native"]) / 3600
        print(
            f"   the paper's MemoryChain figure with {agent}, RTU-RTRL: {total / 1e6:.1f}M agent-steps per method "
            f"-> {hours:.1f} h per method on 2 processes (native)"
        )

    print("\n   two processes side by side (the sweeps' layout: one population per core, sharing the memory bus)")
    figure = 0.0
    methods = {"RTU-RTRL": {}, "RTU-TBPTT(1)": dict(mode="tbptt")}
    methods |= {"GRU-TBPTT(1)": dict(cell="gru", mode="tbptt"), "FFN-TBPTT(1)": dict(cell="ffn", mode="tbptt")}
    for method, overrides in methods.items():
        n = max(steps // 10, 100)
        rates = side_by_side(paper_config("qrc", n, 32, **overrides))
        hours = total / sum(rates) / 3600
        figure += hours
        alone = {"RTU-RTRL": population["qrc", "native"], "GRU-TBPTT(1)": baselines["gru", "native"]}
        alone["FFN-TBPTT(1)"] = baselines["ffn", "native"]
        share = f" = {100 * sum(rates) / (2 * alone[method]):.0f}% of twice one alone" if method in alone else ""
        print(
            f"   qrc {method:13s} P=32 x 2: {sum(rates):7.0f} agent-steps/s in all{share} -> the paper's MemoryChain "
            f"row in {hours:.1f} h"
        )
    print(f"   the paper's MemoryChain figure, all four rows, two processes: {figure:.1f} h")

    if args.scaling:
        scaling(args)


def scaling(args) -> None:
    print("\n4. time per step vs RTU size (width 128), Stream AC(λ)")
    steps = 600 if args.quick else 3000
    sizes = (32, 64, 128) if args.quick else (32, 64, 128, 256, 512, 1024)
    times = {"native": [], "eager": []}
    for n in sizes:
        for engine in times:
            cfg = config(n, 128, max(steps // max(n // 128, 1), 300), engine=engine)
            times[engine].append(1.0 / agent_steps_per_second(cfg))
        print(
            f"   n = {n:5d}: native {1000 * times['native'][-1]:7.2f} ms/step, eager {1000 * times['eager'][-1]:7.2f} "
            f"ms/step, {rtu_parameters(n, 128):9,d} RTU parameters"
        )
    params = np.array([rtu_parameters(n, 128) for n in sizes], float)
    for label, measured in times.items():
        slope = np.polyfit(np.log(params), np.log(measured), 1)[0]
        upper = np.polyfit(np.log(params[-3:]), np.log(measured[-3:]), 1)[0]
        print(
            f"   {label}: log-log slope of time vs parameters {slope:.2f} over all sizes, {upper:.2f} over the "
            "largest three"
        )
        per_param, fixed = np.polyfit(params, measured, 1)
        worst = np.max(np.abs(fixed + per_param * params - measured) / measured)
        print(
            f"   {label}: affine fit t = {1000 * fixed:.2f} ms + {1e9 * per_param:.1f} ms per million parameters "
            f"(worst misfit {100 * worst:.0f}%)"
        )
    path = Path(tempfile.gettempdir()) / "scaling_quick.png" if args.quick else ASSETS / "scaling.png"
    plot_scaling(np.array(sizes), params, {k: np.array(v) for k, v in times.items()}, path)


def plot_scaling(sizes, params, times: dict[str, np.ndarray], path: Path) -> None:
    """Measured time per step vs parameters (native and eager), and a dense RNN's RTRL cost from the smallest size.

    Dense RTRL keeps ∂h/∂θ for every (unit, parameter) pair: n x #params numbers updated with an n x n
    Jacobian each step, O(n^2 #params) work vs the RTU's O(#params). Scaled so both agree at the smallest n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dense_params = sizes**2 + sizes * 128
    dense = times["eager"][0] * (sizes**2 * dense_params) / (sizes[0] ** 2 * dense_params[0])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.loglog(params, 1000 * times["native"], "o-", label="RTU + exact RTRL, native (measured, whole agent step)")
    ax.loglog(params, 1000 * times["eager"], "^-", label="RTU + exact RTRL, eager (measured, whole agent step)")
    ax.loglog(params, 1000 * times["eager"][-1] * params / params[-1], "k:", label="slope 1 (linear in #params)")
    ax.loglog(params, 1000 * dense, "s--", color="tab:red", label="dense-RNN RTRL, O(n² #params) (analytic)")
    for n, p, t in zip(sizes, params, times["native"]):
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
