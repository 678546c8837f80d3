"""Sweeps: a grid of runs, packed into populations, run on local processes or on Ray, resumable.

A grid is a base config, axes (any ``TrainConfig`` field, or ``method`` = a (cell, mode) pair of
``config.METHODS``) and a number of seeds. Every grid point x seed is one *run* with its own results folder
``OUT/runs/<name>/`` (config.json, episodes.csv, summary.json -- the files ``python -m rtu_core train`` writes
for that config). Runs that differ only in ``MEMBER_FIELDS`` (seed, chain length) are packed into one
population; a population member equals its solo run, so packing changes speed, never results. Finished
runs are skipped when the same sweep is started again. ``OUT/summary.csv`` and ``OUT/summary.md`` aggregate
the runs over seeds.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .config import MEMBER_FIELDS, METHODS, ConfigError, TrainConfig, field_type
from .events import Progress, RunEnd
from .results import RunRecorder, write_atomic

FINISHED = ("completed", "timeout", "diverged")  # a run in one of these states is not run again
METRICS = ("success_rate", "final_return", "eval_success_rate", "eval_return")
OPTIONAL_METRICS = ("sensitivity_staleness",)  # columns only when the runs measured them
CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True)
class Grid:
    """The runs of a sweep: base config values, the axes varied over (in order) and the seeds per point."""

    base: dict
    axes: dict[str, list]
    seeds: int = 1

    def __post_init__(self):
        for name, values in self.axes.items():
            if name != "method" and name not in CONFIG_FIELDS or name in ("seed", "population"):
                raise ConfigError(f"cannot sweep over {name!r} (a TrainConfig field or 'method'; seeds via --seeds)")
            if not values:
                raise ConfigError(f"axis {name} has no values")
            if name == "method":
                unknown = [v for v in values if v not in METHODS]
                if unknown:
                    raise ConfigError(f"unknown method {unknown[0]!r} (choose from {', '.join(METHODS)})")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")

    def points(self) -> list[dict]:
        """Each grid point as {axis: value}, in the axes' order."""
        names = list(self.axes)
        return [dict(zip(names, values)) for values in itertools.product(*self.axes.values())]

    def runs(self) -> list[tuple[str, TrainConfig]]:
        """(name, solo config) of every grid point and seed; an invalid point is a one-line ConfigError."""
        runs = []
        for point in self.points():
            values = dict(self.base)
            for name, value in point.items():
                if name == "method":
                    values["cell"], values["mode"] = METHODS[value]
                else:
                    values[name] = value
            for k in range(self.seeds):
                values["seed"] = self.base.get("seed", 0) + k
                try:
                    config = TrainConfig(**{**values, "population": 1})
                except ConfigError as error:
                    raise ConfigError(f"grid point {point_name(point)}: {error}") from None
                runs.append((point_name({**point, "seed": values["seed"]}), config))
        return runs

    def to_dict(self) -> dict:
        return {"base": self.base, "axes": self.axes, "seeds": self.seeds}


def point_name(point: dict) -> str:
    """A run's folder name: ``chain_length=16,method=rtu-rtrl,seed=3``."""
    return ",".join(f"{name}={value}" for name, value in point.items())


def parse_axis(text: str) -> tuple[str, list]:
    """``chain_length=2,4,8`` -> ("chain_length", [2, 4, 8]), values typed like the field."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not values:
        raise ConfigError(f"--grid {text!r}: expected NAME=V1,V2,...")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if name == "method" or name not in CONFIG_FIELDS:
        return name, items
    kind = field_type(name)
    try:
        if kind is bool:
            parsed = [{"true": True, "false": False}[v.lower()] for v in items]
        else:
            parsed = [kind(v) for v in items]
    except (ValueError, KeyError):
        raise ConfigError(f"--grid {name}: values must be {kind.__name__}, got {values!r}") from None
    return name, parsed


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
    from .training import train

    recorder = RunRecorder([config for _, config in members])
    done = 0
    for event in train([config for _, config in members]):
        recorder.record(event)
        if report is not None and isinstance(event, (Progress, RunEnd)):
            report(event.step * len(members) - done)
            done = event.step * len(members)
    return {name: recorder.member_files(i) for i, (name, _) in enumerate(members)}


def finished(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "summary.json").read_text())["status"] in FINISHED
    except (OSError, ValueError, KeyError):
        return False


def write_run(out: Path, name: str, files: dict[str, str]) -> None:
    """A run's files, summary.json last: a run folder with a summary is complete."""
    for file_name in sorted(files, key=lambda file_name: file_name == "summary.json"):
        write_atomic(out / "runs" / name / file_name, files[file_name])


def aggregate(out: Path, grid: Grid) -> list[dict]:
    """One row per grid point: mean and standard error over its finished seeds of each metric."""
    per_point = []
    for point in grid.points():
        summaries = []
        for k in range(grid.seeds):
            run_dir = out / "runs" / point_name({**point, "seed": grid.base.get("seed", 0) + k})
            if finished(run_dir):
                summaries.append(json.loads((run_dir / "summary.json").read_text()))
        per_point.append((point, summaries))
    measured = [m for m in OPTIONAL_METRICS if any(m in s for _, summaries in per_point for s in summaries)]
    rows = []
    for point, summaries in per_point:
        row = {**point, "seeds": len(summaries)}
        for metric in (*METRICS, *measured):
            values = [s[metric] for s in summaries if s.get(metric) is not None]
            row[metric] = float(np.mean(values)) if values else None
            row[metric + "_se"] = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
        rows.append(row)
    return rows


def table_markdown(rows: list[dict], axes: Iterable[str]) -> str:
    axes = list(axes)
    metrics = [m for m in (*METRICS, *OPTIONAL_METRICS) if m in rows[0]]
    header = axes + ["seeds"] + metrics
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row[a]) for a in axes] + [str(row["seeds"])]
        for metric in metrics:
            mean, se = row[metric], row[metric + "_se"]
            cells.append("–" if mean is None else f"{mean:.3f}" + (f" ± {se:.3f}" if se is not None else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_aggregate(out: Path, grid: Grid) -> str:
    rows = aggregate(out, grid)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "summary.csv", text.getvalue())
    markdown = table_markdown(rows, grid.axes)
    write_atomic(out / "summary.md", markdown)
    return markdown


def check_out_dir(out: Path, grid: Grid) -> None:
    """``out`` must be new, empty, or hold this very sweep (to resume it)."""
    spec = out / "sweep.json"
    if spec.exists():
        if json.loads(spec.read_text()) != json.loads(json.dumps(grid.to_dict())):
            raise ConfigError(f"{out} holds a different sweep (its sweep.json); choose a new --out")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and holds no sweep; choose a new --out")


def prepare(out: Path, grid: Grid) -> list[tuple[str, TrainConfig]]:
    """Check ``out``, record the grid in ``out/sweep.json``, and return the runs still to do."""
    check_out_dir(out, grid)
    write_atomic(out / "sweep.json", json.dumps(grid.to_dict(), indent=2) + "\n")
    return [(name, config) for name, config in grid.runs() if not finished(out / "runs" / name)]


class LocalBackend:
    """Populations on ``workers`` local processes (a fork server: no re-import per task)."""

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, populations, on_result, on_progress) -> None:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with context.Manager() as manager:
            progress = manager.Queue()
            pool = context.Pool(self.workers)
            try:
                pending = [pool.apply_async(run_population, (members, progress.put)) for members in populations]
                while pending:
                    pending[0].wait(0.5)
                    _drain(progress, on_progress, queue.Empty)
                    for result in [r for r in pending if r.ready()]:
                        pending.remove(result)
                        on_result(result.get())
                _drain(progress, on_progress, queue.Empty)
                pool.close()
            except BaseException:  # Ctrl-C or a failed population: stop the others now
                pool.terminate()
                raise
            finally:
                pool.join()


class RayBackend:
    """Populations as Ray tasks (one CPU each): a local Ray, or ``address`` to join an existing cluster."""

    def __init__(self, workers: int, address: str | None = None):
        self.workers, self.address = workers, address

    def run(self, populations, on_result, on_progress) -> None:
        try:
            import ray
            from ray.util.queue import Empty, Queue
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install 'rtu-lab[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address, log_to_driver=False, logging_level="warning")
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False, logging_level="warning")
        pending = []
        try:
            progress = Queue()
            task = ray.remote(num_cpus=1)(_ray_population)
            pending = [task.remote(members, progress) for members in populations]
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                _drain(progress, on_progress, Empty)
                for ref in done:
                    on_result(ray.get(ref))
            _drain(progress, on_progress, Empty)
        finally:
            for ref in pending:  # after Ctrl-C or a failed task
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


def _ray_population(members, progress_queue) -> dict:
    return run_population(members, progress_queue.put)


def _drain(progress, on_progress, empty: type[Exception]) -> None:
    """Hand every progress report waiting in ``progress`` to ``on_progress``."""
    while True:
        try:
            on_progress(progress.get_nowait())
        except empty:
            return


def run_sweep(
    out: Path,
    grid: Grid,
    backend,
    max_population: int = 64,
    on_progress: Callable[[int], None] = lambda steps: None,
    on_run: Callable[[str], None] = lambda name: None,
) -> tuple[int, int]:
    """Run the unfinished runs of ``grid`` into ``out``; returns (runs done now, runs skipped as finished)."""
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
        backend.run(pack(todo, backend.workers, max_population), on_result, on_progress)
    write_aggregate(out, grid)
    return len(todo), skipped
