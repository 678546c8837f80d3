"""The training loop: ``train(config)`` yields events; every consumer (CLI, app, notebooks, sweeps) uses it.

Per step, for all P members in lockstep (each member has ``lanes`` environments: one for the streaming agents,
``ppo_num_envs`` for the batched PPO baseline, whose step counts all of them):

    o_t (normalised) -> agent.act -> pending (a_t and what the update needs) -> env.step(a_t) -> r_t, o_{t+1}
    -> agent.learn(pending, scaled r_t, normalised o_{t+1}, terminal, done)   (one streaming update; PPO: one
                                                                          record, and an update after every rollout)
    -> every ``staleness_every`` steps: Staleness; every ``rtrl_refresh`` steps: RTRL states replayed
    -> environments whose episode ended: EpisodeEnd, env reset, memory and traces reset

then, after ``steps`` steps, a greedy evaluation of every member (normalisation frozen) and RunEnd.
Stopping early is the consumer's choice: close the generator (or stop iterating); time-outs and
non-finite TD errors (or losses) end the run with a RunEnd whose status says why, after the events so far.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterator

import gymnasium as gym
import numpy as np
import torch

from . import checkpoint
from .agents import AGENTS, agent_class
from .baselines import PPO
from .config import TrainConfig, pack_population
from .engines import choose
from .engines.graphs import GraphedAgent
from .envs import episode_success, make_env
from .envs.memory_chain import MemoryChainPopulation
from .envs.population import EnvPopulation
from .events import Checkpoint, EpisodeEnd, EvaluationEnd, Event, MemberEnd, Progress, RunEnd, Snapshot, Staleness
from .network import MemoryNetwork
from .rng import MemberRandom, member_seeds

INIT, ACTIONS, ENV, EVAL_ENV = range(4)
LEARNERS = {**AGENTS, "ppo": PPO}  # the streaming agents and the batched baseline


def make_population(
    members: list[TrainConfig], seeds: list[int], lanes: int = 1
) -> EnvPopulation | MemoryChainPopulation:
    """The members' environments (``lanes`` each, lane j seeded ``seed + j``), stepped in lockstep: MemoryChain as
    one NumPy batch, other tasks one by one."""
    members = [m for m in members for _ in range(lanes)]
    seeds = [seed + lane for seed in seeds for lane in range(lanes)]
    if members[0].env == "memory_chain":
        return MemoryChainPopulation(
            [m.chain_length for m in members], [m.observation_timing for m in members], seeds, members[0].num_bits
        )
    return EnvPopulation([lambda m=m: make_env(m.env, **m.env_kwargs()) for m in members], seeds)


class Run:
    """Everything one population run owns: environments, agent, normalisers, random streams."""

    def __init__(self, config: TrainConfig | list[TrainConfig]):
        config, members = pack_population(config)
        self.config, self.members = config, members
        self.dtype = getattr(torch, config.dtype)
        self.seeds = [member_seeds(m.seed, 4) for m in members]
        learner = LEARNERS[config.agent]
        self.envs = make_population(members, [s[ENV] for s in self.seeds], learner.lanes_of(config))
        self.obs_size = gym.spaces.flatdim(self.envs.observation_space)
        init_generators = [torch.Generator().manual_seed(s[INIT]) for s in self.seeds]
        self.device = torch.device(config.device)
        action_random = MemberRandom([s[ACTIONS] for s in self.seeds], dtype=self.dtype, device=config.device)
        self.engine = choose(config)
        learner = agent_class(learner, self.engine.step)
        self.agent = learner(config, self.obs_size, self.envs.action_space, init_generators, action_random, self.engine)
        if self.engine.graphs:
            self.agent = GraphedAgent(self.agent)
        self.obs_normalizer, self.reward_scaler = self.agent.normalizers(config, self.obs_size)

    def observe(self, raw: np.ndarray, mask: np.ndarray | None = None) -> torch.Tensor:
        """The agent's input: raw observations normalised (statistics updated with the rows in ``mask``)."""
        if self.obs_normalizer is None:
            return self.tensor(np.asarray(raw).reshape(len(raw), -1))
        return self.tensor(self.obs_normalizer(raw, mask=mask))

    def scale(self, reward: np.ndarray, done: np.ndarray) -> torch.Tensor:
        """The reward the agent learns from."""
        return self.tensor(reward if self.reward_scaler is None else self.reward_scaler(reward, done))

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        """A NumPy array as a tensor of the run's dtype on its device (bool arrays stay bool)."""
        tensor = torch.from_numpy(np.asarray(array))
        return tensor.to(self.device, None if tensor.dtype == torch.bool else self.dtype)

    def env_actions(self, action: torch.Tensor, alive: np.ndarray | None = None) -> np.ndarray:
        """The actions as the environments take them; a stopped (diverged) member's lanes get action 0."""
        action = action.cpu()
        discrete = isinstance(self.envs.action_space, gym.spaces.Discrete)
        actions = action.numpy() if discrete else action.double().numpy()
        if alive is not None and not alive.all():
            actions = actions.copy()
            actions[np.repeat(~alive, len(actions) // len(alive))] = 0
        return actions


@dataclass
class Loop:
    """The training loop's own state between steps: what a checkpoint needs beside the ``Run``."""

    step: int
    obs: torch.Tensor  # the normalised observation the next step acts on
    episode_return: np.ndarray
    episode_length: np.ndarray
    episodes: np.ndarray
    elapsed: float = 0.0  # seconds trained before this sitting
    alive: np.ndarray | None = None  # members still training (None: all; a diverged member stops, the rest go on)


def save_checkpoint(path: Path, run: Run, loop: Loop, **objects) -> None:
    """Write the run's whole state to ``path`` as plain data (``rtu_core.checkpoint``), atomically; ``objects`` (the
    recorder) are saved beside it, each as its state."""
    checkpoint.save(
        path,
        {
            "config": run.config.to_dict(),
            "members": [m.to_dict() for m in run.members],
            "run": checkpoint.state_of(run, "run"),
            "loop": {f.name: checkpoint.state_of(getattr(loop, f.name), f"loop.{f.name}") for f in fields(Loop)},
            **{name: checkpoint.state_of(value, name) for name, value in objects.items()},
        },
    )


def load_checkpoint(path: Path) -> dict:
    """What ``save_checkpoint`` wrote, as plain data (opening it runs no code); ``train(resume=...)`` takes it. A file
    that does not load (damaged, not a checkpoint, or of another format) is a one-line ConfigError naming it."""
    return checkpoint.load(path)


def resumed(state: dict) -> tuple[Run, Loop]:
    """The run and loop state a checkpoint holds: the run is built from the saved configs as a fresh run is (its
    environments reset), then every saved value is written into it."""
    run = Run([TrainConfig.from_dict(member) for member in state["members"]])
    run.envs.reset()
    checkpoint.restore(run, state["run"])
    loop = Loop(**{name: checkpoint.restore(None, value, f"loop.{name}") for name, value in state["loop"].items()})
    return run, loop


def checkpoint_of(path: Path, members: list[TrainConfig]) -> dict | None:
    """The checkpoint at ``path`` if it holds exactly this population (config fields added since it was written
    read as their defaults); None if there is none or it holds another."""
    if not Path(path).exists():
        return None
    state = load_checkpoint(path)
    return state if [TrainConfig.from_dict(saved) for saved in state["members"]] == members else None


def train(
    config: TrainConfig | list[TrainConfig],
    *,
    checkpoint_every: int = 0,
    resume: dict | None = None,
    stop: Callable[[], bool] | None = None,
    hold: Callable[[], bool] | None = None,
) -> Iterator[Event]:
    """Train ``config.population`` agents for ``config.steps`` steps each, yielding events as they happen.

    ``config`` may also be a list of solo configs differing only in seed and environment parameters
    (``MEMBER_FIELDS``): they train as one population, member i being ``config[i]``.

    Every ``checkpoint_every`` steps (and when stopping) a ``Checkpoint`` event offers to save the run;
    ``resume`` (a loaded checkpoint) continues it exactly where it was saved. ``stop()``, asked after every step,
    ends the run cleanly at that step boundary (status 'interrupted'). ``hold()``, also asked after every step,
    may block (the lab's Pause holds the run there); while it returns True the step just taken is reported at once
    (a ``Progress`` and, with snapshots on, a ``Snapshot``: the lab's single Step shows the running episode).

    Uses one intra-op thread: streaming steps are tiny, one thread is fastest for them, and it makes
    every population member bitwise equal to its solo run. Parallelism comes from populations."""
    torch.set_num_threads(1)
    if resume is not None:
        run, loop = resumed(resume)
    else:
        run = Run(config)
        P = run.config.population
        rows = P * run.agent.lanes  # one per environment
        obs = run.observe(run.envs.reset())
        loop = Loop(0, obs, np.zeros(rows), np.zeros(rows, dtype=np.int64), np.zeros(P, dtype=np.int64))
    config, lanes = run.config, run.agent.lanes  # environments per member; a step counts all of them
    P, started = config.population, time.perf_counter() - loop.elapsed
    window = deque(maxlen=config.snapshot_window) if config.snapshot_every else None
    episode_return = loop.episode_return
    episode_length = loop.episode_length
    episodes = loop.episodes
    obs = loop.obs
    step, last = loop.step, config.steps // lanes * lanes
    alive = np.ones(P, dtype=bool) if loop.alive is None else loop.alive

    def due(every: int) -> bool:  # the step passed a multiple of ``every``
        return bool(every) and step % every < lanes

    def checkpoint(step: int) -> Checkpoint:
        state = Loop(
            step,
            obs,
            episode_return.copy(),
            episode_length.copy(),
            episodes.copy(),
            time.perf_counter() - started,
            alive.copy(),
        )
        return Checkpoint(step, lambda path, **extra: save_checkpoint(path, run, state, **extra))

    try:
        for step in range(loop.step + lanes, last + 1, lanes):
            pending = run.agent.act(obs)
            next_raw, reward, terminated, truncated, infos = run.envs.step(run.env_actions(pending.action, alive))
            done = terminated | truncated
            next_obs = run.observe(next_raw)
            done_t = run.tensor(done)
            scaled = run.scale(reward, done)
            td_error = run.agent.learn(pending, scaled, next_obs, run.tensor(terminated), done_t).cpu()
            diverged = alive & ~np.isfinite(td_error.numpy())
            for member in np.flatnonzero(diverged):
                alive[member] = False
                message = f"non-finite TD error at step {step} (member {member}); stopped"
                yield MemberEnd(step, int(member), "diverged", message)
            if not alive.any():
                yield RunEnd("diverged", step, time.perf_counter() - started, message)
                return
            if due(config.staleness_every):
                yield Staleness(step, run.agent.staleness())
            if due(config.rtrl_refresh):
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
                    member = i // lanes
                    if not alive[member]:
                        continue
                    yield EpisodeEnd(
                        step,
                        int(member),
                        int(episodes[member]),
                        float(episode_return[i]),
                        int(episode_length[i]),
                        episode_success(infos[i]),
                    )
                    episodes[member] += 1
                episode_return[done], episode_length[done] = 0.0, 0
                next_raw = run.envs.reset_members(next_raw, done)
                reset_obs = run.observe(next_raw, mask=done)
                next_obs = torch.where(done_t.unsqueeze(-1), reset_obs, next_obs)
            obs = next_obs
            elapsed = time.perf_counter() - started
            if due(config.progress_every) or step == last:
                yield Progress(step, config.steps, P, step / max(elapsed, 1e-9), td_error.abs().numpy().copy())
            if due(config.snapshot_every):
                yield snapshot(run, step, window)
            while hold is not None and hold():
                yield Progress(step, config.steps, P, step / max(elapsed, 1e-9), td_error.abs().numpy().copy())
                if window is not None:
                    yield snapshot(run, step, window)
            stopping = stop is not None and stop()
            if checkpoint_every and (due(checkpoint_every) or stopping):
                yield checkpoint(step)
            if stopping:
                yield RunEnd("interrupted", step, elapsed, f"interrupted at step {step}")
                return
            if config.time_limit is not None and elapsed > config.time_limit:
                yield RunEnd("timeout", step, elapsed, f"time limit of {config.time_limit:g} s reached at step {step}")
                return
        for event in evaluate(run, started, alive):
            yield event
            if isinstance(event, RunEnd):
                return
        yield RunEnd("completed", step, time.perf_counter() - started)
    finally:
        run.envs.close()


def snapshot(run: Run, step: int, window: deque) -> Snapshot:
    agent = run.agent
    hidden = {name: np.stack([h[name] for h, _, _ in window]) for name in window[0][0]} if window else {}
    return Snapshot(
        step=step,
        hidden=hidden,
        episode_time=np.array([t for _, t, _ in window], dtype=np.int64),
        cue=np.array([np.nan if c is None else c for _, _, c in window], dtype=float),
        eigenvalues={
            name: np.atleast_2d(net.cell.eigenvalues().cpu().numpy())  # (P, n); PPO: one member
            for name, net in agent.networks.items()
            if hasattr(net.cell, "eigenvalues")
        },
        sensitivity_norms={
            name: {p: v.cpu().numpy() for p, v in MemoryNetwork.sensitivity_norms(m).items()}
            for name, m in agent.memories.items()
        },
        trace_norms={name: v.detach().cpu().numpy() for name, v in agent.trace_norms().items()},
    )


def evaluate(run: Run, started: float, alive: np.ndarray) -> Iterator[Event]:
    """``eval_episodes`` greedy episodes per member still ``alive`` on fresh environments; no learning, frozen
    statistics."""
    config, P = run.config, run.config.population
    if config.eval_episodes == 0:
        return
    envs = make_population(run.members, [s[EVAL_ENV] for s in run.seeds])
    if run.obs_normalizer is not None:
        run.obs_normalizer.frozen = True
    run.agent.reset_memory()
    returns: list[list[float]] = [[] for _ in range(P)]
    successes: list[list[float]] = [[] for _ in range(P)]
    episode_return = np.zeros(P)
    raw = envs.reset()
    try:
        while min(len(returns[i]) for i in np.flatnonzero(alive)) < config.eval_episodes:
            with torch.no_grad():
                action = run.agent.act(run.observe(raw), greedy=True, learn=False).action
            raw, reward, terminated, truncated, infos = envs.step(run.env_actions(action, alive))
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
    for i in np.flatnonzero(alive):
        yield EvaluationEnd(int(i), returns[i], successes[i])
