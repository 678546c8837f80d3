"""Packing a sweep's runs into populations (runs that differ only in ``MEMBER_FIELDS`` share one; a member equals
its solo run, so packing changes speed, never results), and training one population into its members' files."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Callable

from ..config import MEMBER_FIELDS, TrainConfig
from ..events import Progress, RunEnd
from ..results import RunRecorder


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


def run_population(members: list[tuple[str, TrainConfig]], report: Callable[[int], None] | None = None) -> dict:
    """Train one population; return {run name: {file name: text}} of every member's results files.

    ``report(agent_steps)`` is called with the agent-steps done since its last call. Runs in a worker
    (a local process or a Ray task), so it returns file contents instead of writing them.
    """
    from ..training import train

    recorder = RunRecorder([config for _, config in members])
    done = 0
    for event in train([config for _, config in members]):
        recorder.record(event)
        if report is not None and isinstance(event, (Progress, RunEnd)):
            report(event.step * len(members) - done)
            done = event.step * len(members)
    return {name: recorder.member_files(i) for i, (name, _) in enumerate(members)}
