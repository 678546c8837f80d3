"""A sweep's folder: ``OUT/sweep.json`` (the grid), ``OUT/runs/<name>/`` (each run's config.json, episodes.csv,
summary.json -- summary last, so a folder with a summary is complete) and ``OUT/summary.csv`` / ``summary.md``
(the runs aggregated over seeds)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from ..config import ConfigError, TrainConfig
from ..results import write_atomic
from .grid import Grid, point_name

FINISHED = ("completed", "timeout", "diverged")  # a run in one of these states is not run again
METRICS = ("success_rate", "final_return", "eval_success_rate", "eval_return")
OPTIONAL_METRICS = ("sensitivity_staleness",)  # columns only when the runs measured them


def finished(run_dir: Path, config: TrainConfig | None = None) -> bool:
    """Whether ``run_dir`` holds a run that ended (``FINISHED``: a timeout under the config's own time limit would
    time out again); with ``config``, one that ran this very config (a folder left by another budget or setting is
    not finished). The one notion of "finished" of the sweeps and the reproduction scripts."""
    try:
        if json.loads((run_dir / "summary.json").read_text())["status"] not in FINISHED:
            return False
        return config is None or TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())) == config
    except (OSError, ValueError, KeyError, ConfigError):
        return False


def write_files(folder: Path, files: dict[str, str]) -> None:
    """A run's files into ``folder``, summary.json last: a run folder with a summary is complete."""
    for file_name in sorted(files, key=lambda file_name: file_name == "summary.json"):
        write_atomic(Path(folder) / file_name, files[file_name])


def write_run(out: Path, name: str, files: dict[str, str]) -> None:
    """A sweep run's files into ``OUT/runs/<name>/`` (``write_files``)."""
    write_files(out / "runs" / name, files)


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


def check_out_dir(out: Path, grid: Grid) -> Grid:
    """``out`` must be new, empty, or hold a sweep of the same base settings and axes (to resume it, or to add grid
    values or seeds to it: a run's folder is named by its point, so runs of either grid are the same runs). Returns
    the folder's grid after this sweep: each axis the union of the recorded values and this sweep's, in that order."""
    spec = out / "sweep.json"
    if spec.exists():
        recorded = json.loads(spec.read_text())
        same = json.loads(json.dumps(grid.to_dict()))
        if recorded["base"] != same["base"] or list(recorded["axes"]) != list(same["axes"]):
            raise ConfigError(f"{out} holds a sweep of other settings or axes (its sweep.json); choose a new --out")
        axes = {
            name: values + [v for v in same["axes"][name] if v not in values]
            for name, values in recorded["axes"].items()
        }
        return Grid(grid.base, axes, max(recorded["seeds"], grid.seeds))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and holds no sweep; choose a new --out")
    return grid


def prepare(out: Path, grid: Grid) -> tuple[Grid, list[tuple[str, TrainConfig]]]:
    """Check ``out``, record the folder's grid (``check_out_dir``) in ``out/sweep.json``, and return it with the runs
    of ``grid`` still to do."""
    folder_grid = check_out_dir(out, grid)
    write_atomic(out / "sweep.json", json.dumps(folder_grid.to_dict(), indent=2) + "\n")
    return folder_grid, [(name, config) for name, config in grid.runs() if not finished(out / "runs" / name, config)]
