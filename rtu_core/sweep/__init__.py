"""Sweeps: a grid of runs, packed into populations, run on local processes or on Ray, resumable.

- ``grid``: the runs (a base config, axes, seeds), each with its own results folder ``OUT/runs/<name>/``
  holding the files ``python -m rtu_core train`` writes for that config;
- ``packing``: runs that differ only in ``MEMBER_FIELDS`` (seed, chain length) share a population; a member equals
  its solo run, so packing changes speed, never results;
- ``backends``: local processes or Ray;
- ``store``: the folder, finished runs (skipped when the same sweep is started again) and the aggregate over seeds
  (``OUT/summary.csv`` and ``OUT/summary.md``).
Plots of sweeps live with the benchmarks (``benchmarks/comparison.py``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from .backends import LocalBackend, RayBackend
from .grid import Grid, parse_axis, point_name
from .packing import Population, checkpoint_path, pack, run_population
from .store import aggregate, check_out_dir, finished, prepare, table_markdown, write_aggregate, write_run

__all__ = [
    "Grid",
    "LocalBackend",
    "Population",
    "RayBackend",
    "aggregate",
    "check_out_dir",
    "finished",
    "pack",
    "parse_axis",
    "point_name",
    "prepare",
    "run_population",
    "run_sweep",
    "table_markdown",
    "write_aggregate",
]


def run_sweep(
    out: Path,
    grid: Grid,
    backend,
    max_population: int = 64,
    on_progress: Callable[[int], None] = lambda steps: None,
    on_run: Callable[[str], None] = lambda name: None,
    checkpoint_every: int = 0,
) -> tuple[int, int]:
    """Run the unfinished runs of ``grid`` into ``out``; returns (runs done now, runs skipped as finished).
    With ``checkpoint_every``, every population keeps a checkpoint in ``out/checkpoints/`` and a sweep started
    again continues each unfinished population from it (when the same runs are packed together again)."""
    todo = prepare(out, grid)
    skipped = len(grid.runs()) - len(todo)
    lock = threading.Lock()

    def on_result(files: dict) -> None:
        with lock:
            for name, run_files in files.items():
                write_run(out, name, run_files)
                on_run(name)
            write_aggregate(out, grid)

    if todo:
        populations = [
            Population(members, checkpoint_path(out / "checkpoints", members), checkpoint_every)
            if checkpoint_every
            else Population(members)
            for members in pack(todo, backend.workers, max_population)
        ]
        backend.run(populations, on_result, on_progress)
    write_aggregate(out, grid)
    return len(todo), skipped
