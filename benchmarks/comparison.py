"""Comparisons of labelled sweeps for the benchmarks: one markdown table (methods x tasks) and a bar plot.

The sweeps themselves are ``rtu_core.sweep``'s (resumable, packed into populations); this module only runs several
of them into sibling folders and tabulates / plots what they wrote. Plotting needs matplotlib (the ``bench`` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from rtu_core.config import METHOD_LABELS
from rtu_core.results import write_atomic
from rtu_core.sweep import Grid, aggregate, check_out_dir, run_sweep


def run_comparison(
    out: Path,
    grids: dict[str, Grid],
    backend,
    task_name: Callable[[dict], str],
    metric: str = "final_return",
    digits: int = 3,
    checkpoint_every: int = 0,
) -> tuple[str, list[dict]]:
    """Run labelled sweeps (e.g. {"Stream AC": ..., "PPO": ...}) into ``out/<label>/`` and compare them: a markdown
    table with one row per (label, method) and one column per task (``task_name(grid point)``), each cell the mean
    ± s.e. over seeds of ``metric``; also the rows behind it ({"method", "task", "mean", "se"}). With
    ``checkpoint_every``, unfinished populations continue from their checkpoints when the command is run again."""
    folders = {label: out / label.lower().replace(" ", "_") for label in grids}
    for label, grid in grids.items():  # every grid and folder checked before any run starts
        grid.runs()
        check_out_dir(folders[label], grid)
    rows = []
    for label, grid in grids.items():
        folder = folders[label]
        done, skipped = run_sweep(folder, grid, backend, checkpoint_every=checkpoint_every)
        print(f"{label}: {done} runs trained, {skipped} already finished")
        for row in aggregate(folder, grid):
            method = METHOD_LABELS.get(row.get("method"), row.get("method", ""))
            rows.append(
                {"method": f"{label}, {method}", "task": task_name(row), "mean": row[metric], "se": row[metric + "_se"]}
            )
    markdown = table(rows, digits)
    write_atomic(out / "table.md", markdown)
    return markdown, rows


def table(rows: list[dict], digits: int = 3) -> str:
    """Markdown of ``run_comparison``'s rows: one row per method, one column per task, mean ± s.e."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cells = {
        (r["method"], r["task"]): "–"
        if r["mean"] is None
        else f"{r['mean']:.{digits}f}" + ("" if r["se"] is None else f" ± {r['se']:.{digits}f}")
        for r in rows
    }
    lines = ["| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    lines += ["| " + m + " | " + " | ".join(cells.get((m, t), "") for t in tasks) + " |" for m in methods]
    return "\n".join(lines) + "\n"


def fraction_of(rows: list[dict], reference_method: str) -> str:
    """Markdown of ``run_comparison``'s rows as fractions: each other method's mean as a fraction of
    ``reference_method``'s on the same task (masked MuJoCo: of PPO's return, the paper's framing); '–' where a run is
    missing or the reference's mean is not positive (a ratio to it would not read as a fraction)."""
    reference = {r["task"]: r["mean"] for r in rows if r["method"] == reference_method}
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    lines = ["| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for method in dict.fromkeys(r["method"] for r in rows if r["method"] != reference_method):
        means = {r["task"]: r["mean"] for r in rows if r["method"] == method}
        cells = [
            f"{means[t] / reference[t]:.2f}"
            if means.get(t) is not None and reference.get(t) is not None and reference[t] > 0
            else "–"
            for t in tasks
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_comparison(rows: list[dict], path: Path, title: str, ylabel: str) -> None:
    """A bar chart of ``run_comparison``'s rows: one group of bars per task, one bar (mean ± s.e.) per method.
    Needs matplotlib (the ``bench`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(tasks) + 3), 4))
    for k, method in enumerate(methods):
        cells = {r["task"]: r for r in rows if r["method"] == method}
        means = [cells[t]["mean"] if t in cells and cells[t]["mean"] is not None else np.nan for t in tasks]
        errors = [(cells[t]["se"] or 0.0) if t in cells else 0.0 for t in tasks]
        ax.bar(
            np.arange(len(tasks)) + (k - (len(methods) - 1) / 2) * width,
            means,
            width,
            yerr=errors,
            capsize=2,
            label=method,
        )
    ax.set_xticks(range(len(tasks)), tasks)
    ax.axhline(0, color="grey", lw=1)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")
