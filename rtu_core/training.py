"""The training loop: ``train(config)`` yields events; every consumer (CLI, app, notebooks, sweeps) uses it.

Per step, for all P members in lockstep:

    o_t (normalised) -> agent.act -> a_t -> env.step -> r_t, o_{t+1}
    -> agent.learn(scaled r_t, normalised o_{t+1}, terminal, done)        (one streaming update)
    -> every ``staleness_every`` steps: Staleness; every ``rtrl_refresh`` steps: RTRL states replayed
    -> members whose episode ended: EpisodeEnd, env reset, memory and traces reset

then, after ``steps`` steps, a greedy evaluation of every member (normalisation frozen) and RunEnd.
Stopping early is the consumer's choice: close the generator (or stop iterating); time-outs and
non-finite TD errors end the run with a RunEnd whose status says why, after the events so far.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import gymnasium as gym
import numpy as np
import torch

from .agents import AGENTS
from .config import TrainConfig, pack_population
from .envs import episode_success
from .envs import make_env as make_named_env
from .envs.memory_chain import MemoryChainPopulation
from .envs.population import EnvPopulation
from .events import Checkpoint, EpisodeEnd, EvaluationEnd, Event, Progress, RunEnd, Snapshot, Staleness
from .network import MemoryNetwork
from .normalize import ObservationNormalizer, RewardScaler
from .rng import MemberRandom, member_seeds

INIT, ACTIONS, ENV, EVAL_ENV = range(4)


def make_env(config: TrainConfig) -> gym.Env:
    """The gymnasium environment a config names."""
    return make_named_env(config.env, **config.env_kwargs())


def make_population(members: list[TrainConfig], seeds: list[int]) -> EnvPopulation | MemoryChainPopulation:
    """The members' environments, stepped in lockstep: MemoryChain as one NumPy batch, other tasks one by one."""
    if members[0].env == "memory_chain":
        return MemoryChainPopulation(
            [m.chain_length for m in members], [m.observation_timing for m in members], seeds, members[0].num_bits
        )
    return EnvPopulation([lambda m=m: make_env(m) for m in members], seeds)


class Run:
    """Everything one population run owns: environments, agent, normalisers, random streams."""

    def __init__(self, config: TrainConfig | list[TrainConfig]):
        config, members = pack_population(config)
        self.config, self.members, P = config, members, config.population
        self.dtype = getattr(torch, config.dtype)
        self.seeds = [member_seeds(m.seed, 4) for m in members]
        self.envs = make_population(members, [s[ENV] for s in self.seeds])
        self.obs_size = gym.spaces.flatdim(self.envs.observation_space)
        init_generators = [torch.Generator().manual_seed(s[INIT]) for s in self.seeds]
        self.device = torch.device(config.device)
        action_random = MemberRandom([s[ACTIONS] for s in self.seeds], dtype=self.dtype, device=config.device)
        self.agent = AGENTS[config.agent](config, self.obs_size, self.envs.action_space, init_generators, action_random)
        self.obs_normalizer = ObservationNormalizer(P, self.obs_size)
        self.reward_scaler = RewardScaler(P, config.gamma)

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        """A NumPy array as a tensor of the run's dtype on its device (bool arrays stay bool)."""
        tensor = torch.from_numpy(np.asarray(array))
        return tensor.to(self.device, None if tensor.dtype == torch.bool else self.dtype)

    def env_actions(self, action: torch.Tensor) -> np.ndarray:
        action = action.cpu()
        return action.numpy() if isinstance(self.envs.action_space, gym.spaces.Discrete) else action.double().numpy()


@dataclass
class Loop:
    """The training loop's own state between steps: what a checkpoint needs beside the ``Run``."""

    step: int
    obs: torch.Tensor  # the normalised observation the next step acts on
    episode_return: np.ndarray
    episode_length: np.ndarray
    episodes: np.ndarray
    elapsed: float = 0.0  # seconds trained before this sitting


def save_checkpoint(path: Path, run: Run, loop: Loop, **extra) -> None:
    """Write the run's whole state to ``path`` atomically (a reader sees the old checkpoint or the new one)."""
    import cloudpickle  # gymnasium's own dependency: pickles the wrappers' lambdas too

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(
            {
                "config": run.config.to_dict(),
                "members": [m.to_dict() for m in run.members],
                "run": run,
                "loop": loop,
                **extra,
            },
            tmp,
            pickle_module=cloudpickle,
        )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict:
    """What ``save_checkpoint`` wrote (a trusted local file: it holds pickled objects)."""
    return torch.load(path, weights_only=False)


def train(
    config: TrainConfig | list[TrainConfig],
    *,
    checkpoint_every: int = 0,
    resume: dict | None = None,
    stop: Callable[[], bool] | None = None,
) -> Iterator[Event]:
    """Train ``config.population`` agents for ``config.steps`` steps each, yielding events as they happen.

    ``config`` may also be a list of solo configs differing only in seed and environment parameters
    (``MEMBER_FIELDS``): they train as one population, member i being ``config[i]``.

    Every ``checkpoint_every`` steps (and when stopping) a ``Checkpoint`` event offers to save the run;
    ``resume`` (a loaded checkpoint) continues it exactly where it was saved. ``stop()``, asked after every step,
    ends the run cleanly at that step boundary (status 'interrupted').

    Uses one intra-op thread: streaming steps are tiny, one thread is fastest for them, and it makes
    every population member bitwise equal to its solo run. Parallelism comes from populations."""
    torch.set_num_threads(1)
    solo = config[0] if isinstance(config, list) and len(config) == 1 else config
    if isinstance(solo, TrainConfig) and solo.agent == "ppo":  # the batched baseline: its own loop, same events
        from .agents.ppo import train_ppo

        yield from train_ppo(solo, make_env, tuple(member_seeds(solo.seed, 4)))
        return
    if resume is not None:
        run, loop = resume["run"], resume["loop"]
    else:
        run = Run(config)
        P = run.config.population
        obs = run.tensor(run.obs_normalizer(run.envs.reset()))
        loop = Loop(0, obs, np.zeros(P), np.zeros(P, dtype=np.int64), np.zeros(P, dtype=np.int64))
    config = run.config
    P, started = config.population, time.perf_counter() - loop.elapsed
    window = deque(maxlen=config.snapshot_window) if config.snapshot_every else None
    episode_return, episode_length, episodes, obs = loop.episode_return, loop.episode_length, loop.episodes, loop.obs
    step = loop.step

    def checkpoint(step: int) -> Checkpoint:
        state = Loop(
            step, obs, episode_return.copy(), episode_length.copy(), episodes.copy(), time.perf_counter() - started
        )
        return Checkpoint(step, lambda path, **extra: save_checkpoint(path, run, state, **extra))

    try:
        for step in range(loop.step + 1, config.steps + 1):
            action = run.agent.act(obs)
            next_raw, reward, terminated, truncated, infos = run.envs.step(run.env_actions(action))
            done = terminated | truncated
            next_obs = run.tensor(run.obs_normalizer(next_raw))
            done_t = run.tensor(done)
            scaled = run.tensor(run.reward_scaler(reward, done))
            td_error = run.agent.learn(scaled, next_obs, run.tensor(terminated), done_t).cpu()
            if not bool(torch.isfinite(td_error).all()):
                bad = int(np.flatnonzero(~torch.isfinite(td_error).numpy())[0])
                yield RunEnd(
                    "diverged",
                    step,
                    time.perf_counter() - started,
                    f"non-finite TD error at step {step} (member {bad}); stopped",
                )
                return
            if config.staleness_every and step % config.staleness_every == 0:
                yield Staleness(step, run.agent.staleness())
            if config.rtrl_refresh and step % config.rtrl_refresh == 0:
                run.agent.refresh_rtrl()
            if window is not None:
                window.append(
                    (
                        {
                            n: MemoryNetwork.hidden_state(m)[0].detach().cpu().numpy().copy()
                            for n, m in run.agent.memories.items()
                        },
                        int(episode_length[0]),
                        run.envs.cue(0),
                    )
                )
            episode_return += reward
            episode_length += 1
            if done.any():
                for i in np.flatnonzero(done):
                    yield EpisodeEnd(
                        step,
                        int(i),
                        int(episodes[i]),
                        float(episode_return[i]),
                        int(episode_length[i]),
                        episode_success(infos[i]),
                    )
                episodes[done] += 1
                episode_return[done], episode_length[done] = 0.0, 0
                next_raw = run.envs.reset_members(next_raw, done)
                reset_obs = run.tensor(run.obs_normalizer(next_raw, mask=done))
                next_obs = torch.where(done_t.unsqueeze(-1), reset_obs, next_obs)
            obs = next_obs
            elapsed = time.perf_counter() - started
            if step % config.progress_every == 0 or step == config.steps:
                yield Progress(step, config.steps, P, step / max(elapsed, 1e-9), td_error.abs().numpy().copy())
            if config.snapshot_every and step % config.snapshot_every == 0:
                yield snapshot(run, step, window)
            stopping = stop is not None and stop()
            if checkpoint_every and (step % checkpoint_every == 0 or stopping):
                yield checkpoint(step)
            if stopping:
                yield RunEnd("interrupted", step, elapsed, f"interrupted at step {step}")
                return
            if config.time_limit is not None and elapsed > config.time_limit:
                yield RunEnd("timeout", step, elapsed, f"time limit of {config.time_limit:g} s reached at step {step}")
                return
        for event in evaluate(run, started):
            yield event
            if isinstance(event, RunEnd):
                return
        yield RunEnd("completed", step, time.perf_counter() - started)
    finally:
        run.envs.close()


def snapshot(run: Run, step: int, window: deque) -> Snapshot:
    agent = run.agent
    hidden = {name: np.stack([h[name] for h, _, _ in window]) for name in agent.networks} if window else {}
    return Snapshot(
        step=step,
        hidden=hidden,
        episode_time=np.array([t for _, t, _ in window], dtype=np.int64),
        cue=np.array([np.nan if c is None else c for _, _, c in window], dtype=float),
        eigenvalues={
            name: net.cell.eigenvalues().cpu().numpy()
            for name, net in agent.networks.items()
            if hasattr(net.cell, "eigenvalues")
        },
        sensitivity_norms={
            name: {p: v.cpu().numpy() for p, v in MemoryNetwork.sensitivity_norms(m).items()}
            for name, m in agent.memories.items()
        },
        trace_norms={name: v.detach().cpu().numpy() for name, v in agent.trace_norms().items()},
    )


def evaluate(run: Run, started: float) -> Iterator[Event]:
    """``eval_episodes`` greedy episodes per member on fresh environments; no learning, frozen statistics."""
    config, P = run.config, run.config.population
    if config.eval_episodes == 0:
        return
    envs = make_population(run.members, [s[EVAL_ENV] for s in run.seeds])
    run.obs_normalizer.frozen = True
    run.agent.reset_memory()
    returns: list[list[float]] = [[] for _ in range(P)]
    successes: list[list[float]] = [[] for _ in range(P)]
    episode_return = np.zeros(P)
    raw = envs.reset()
    try:
        while min(len(r) for r in returns) < config.eval_episodes:
            with torch.no_grad():
                action = run.agent.act(run.tensor(run.obs_normalizer(raw)), greedy=True, learn=False)
            raw, reward, terminated, truncated, infos = envs.step(run.env_actions(action))
            done = terminated | truncated
            episode_return += reward
            for i in np.flatnonzero(done):
                if len(returns[i]) < config.eval_episodes:
                    returns[i].append(float(episode_return[i]))
                    success = episode_success(infos[i])
                    if success is not None:
                        successes[i].append(success)
            if done.any():
                episode_return[done] = 0.0
                raw = envs.reset_members(raw, done)
                run.agent.reset_memory(run.tensor(done))
            elapsed = time.perf_counter() - started
            if config.time_limit is not None and elapsed > config.time_limit:
                yield RunEnd(
                    "timeout", config.steps, elapsed, f"time limit of {config.time_limit:g} s reached during evaluation"
                )
                return
    finally:
        envs.close()
    for i in range(P):
        yield EvaluationEnd(i, returns[i], successes[i])
