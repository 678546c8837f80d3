"""Packing a sweep's runs into populations (runs that differ only in ``MEMBER_FIELDS`` share one; a member equals
its solo run, so packing changes speed, never results), and training one population into its members' files."""

from __future__ import annotations

import hashlib
import json
import math
import signal
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import MEMBER_FIELDS, TrainConfig
from ..events import Checkpoint, Progress, RunEnd
from ..results import RunRecorder
from ..stops import stop_on_signals


def pack(runs: list[tuple[str, TrainConfig]], workers: int, max_population: int) -> list[list[tuple[str, TrainConfig]]]:
    """Group runs that may share a population, split groups above ``max_population``, then split the largest
    populations until there are at least ``workers`` of them (when there are enough runs)."""
    groups: dict[str, list] = defaultdict(list)
    for name, config in runs:
        shared = {k: v for k, v in config.to_dict().items() if k not in MEMBER_FIELDS}
        key = name if config.agent == "ppo" else json.dumps(shared, sort_keys=True)  # PPO is batched on its own
        groups[key].append((name, config))
    populations = []
    for members in groups.values():
        populations += _split(members, math.ceil(len(members) / max_population))
    while len(populations) < workers:
        largest = max(populations, key=len)
        if len(largest) < 2:
            break
        populations.remove(largest)
        populations += _split(largest, 2)
    return sorted(populations, key=len, reverse=True)


def _split(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` consecutive chunks whose sizes differ by at most one."""
    bounds = [round(i * len(items) / parts) for i in range(parts + 1)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:])]


@dataclass(frozen=True)
class Population:
    """One population of a sweep: its members (run name, solo config) and, for long runs, where it keeps its
    checkpoint (every ``checkpoint_every`` steps; 0: none)."""

    members: list[tuple[str, TrainConfig]]
    checkpoint: Path | None = None
    checkpoint_every: int = 0


def checkpoint_path(folder: Path, members: list[tuple[str, TrainConfig]]) -> Path:
    """The checkpoint of the population made of exactly these runs: named by a digest of their names."""
    digest = hashlib.sha1("\n".join(sorted(name for name, _ in members)).encode()).hexdigest()[:16]
    return folder / f"{digest}.pt"


def run_population(population: Population, report: Callable[[int], None] | None = None) -> dict:
    """Train one population; return {run name: {file name: text}} of every member's results files.

    ``report(agent_steps)`` is called with the agent-steps done since its last call. Runs in a worker
    (a local process or a Ray task), so it returns file contents instead of writing them. With a checkpoint, an
    interrupted population continues from it when the sweep is started again (the numbers equal an uninterrupted
    run's); the checkpoint is removed once the population has finished. A population with a checkpoint that is
    sent Ctrl-C (SIGINT) or SIGTERM stops at the next step boundary and saves its checkpoint first, then ends as
    the signal asks: KeyboardInterrupt, or SystemExit(143) for SIGTERM.
    """
    from ..training import checkpoint_of, train

    configs = [config for _, config in population.members]
    path = population.checkpoint
    resume = checkpoint_of(path, configs) if path is not None else None
    recorder = RunRecorder.resumed(configs, resume)
    done = resume["loop"]["step"] * len(configs) if resume else 0
    with stop_on_signals(enabled=path is not None) as received:
        for event in train(
            configs,
            checkpoint_every=population.checkpoint_every if path else 0,
            resume=resume,
            stop=lambda: bool(received),
        ):
            recorder.record(event)
            if isinstance(event, Checkpoint):
                path.parent.mkdir(parents=True, exist_ok=True)
                event.save(path, recorder=recorder)
            if report is not None and isinstance(event, (Progress, RunEnd)) and not received:
                try:
                    report(event.step * len(configs) - done)
                except (OSError, EOFError):  # the sweep's process is gone with its queue: stop, as on SIGTERM
                    received.append(signal.SIGTERM)
                done = event.step * len(configs)
    if received:  # stopped by a signal: the checkpoint stays for the next sitting
        if received[0] == signal.SIGTERM:
            raise SystemExit(128 + signal.SIGTERM)
        raise KeyboardInterrupt
    if path is not None:
        path.unlink(missing_ok=True)
    return {name: recorder.member_files(i) for i, (name, _) in enumerate(population.members)}
