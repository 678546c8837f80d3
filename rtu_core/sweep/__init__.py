"""Sweeps: a grid of runs, packed into populations, run on local processes or on Ray, resumable.

- ``grid``: the runs (a base config, axes, seeds), each with its own results folder ``OUT/runs/<name>/``
  holding the files ``python -m rtu_core train`` writes for that config;
- ``packing``: runs that differ only in ``MEMBER_FIELDS`` (seed, chain length) share a population; a member equals
  its solo run, so packing changes speed, never results;
- ``backends``: local processes or Ray;
- ``store``: the folder, finished runs (skipped when the same sweep is started again, or one with other values of
  the same axes) and the aggregate over seeds of every run the folder's grid names (``OUT/summary.csv`` and
  ``OUT/summary.md``).
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
    again continues each unfinished population from it. Populations are then packed from the whole grid (and the
    finished ones dropped), so that a restarted sweep packs the same runs together as the first sitting did."""
    folder_grid, todo = prepare(out, grid)
    skipped = len(grid.runs()) - len(todo)
    lock = threading.Lock()

    def on_result(files: dict) -> None:
        with lock:
            for name, run_files in files.items():
                write_run(out, name, run_files)
                on_run(name)
            write_aggregate(out, folder_grid)

    if not todo:
        populations = []
    elif checkpoint_every:
        unfinished = {name for name, _ in todo}
        packed = pack(grid.runs(), backend.workers, max_population)
        packed = [[run for run in members if run[0] in unfinished] for members in packed]
        folder = out / "checkpoints"
        populations = [Population(m, checkpoint_path(folder, m), checkpoint_every) for m in packed if m]
    else:
        populations = [Population(members) for members in pack(todo, backend.workers, max_population)]
    if populations:
        backend.run(populations, on_result, on_progress)
    write_aggregate(out, folder_grid)
    return len(todo), skipped
