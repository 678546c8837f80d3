"""Learning curves of finished runs: the mean of an episode metric per window of training steps, mean ± s.e. over
the runs (seeds) of each line, one panel per task.

    python benchmarks/curves.py results/popgym_1m/qrc --window 50000 --plot assets/popgym_1m_qrc_curves.png
    python benchmarks/curves.py results/memory_chain_500k --by chain_length --metric success --window 25000

Every ``episodes.csv`` below the folders is one run, with the ``config.json`` beside it; where a run's folder holds
no ``episodes.csv`` (it stays on the machine that ran it), its committed ``curve.csv`` (100 windows of its budget:
episodes and their mean return and success) stands in, for ``--window`` a multiple of its windows. A run's value in
window k is the mean of the metric over its episodes that ended at a step in (k w, (k + 1) w]; a line's value is the
mean ± standard error of its runs' values. Panels are the distinct values of ``--by`` (a config field), lines those of
``--lines`` (config fields joined; a switch shows as name=value). Where every run of a panel is a QRC(λ) agent, a
dashed line marks the step at which ε has decayed to its final value. The table goes to standard output (and
``--table``); plotting needs matplotlib (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from rtu_core.config import FIELD_DEFAULTS
from rtu_core.results import write_atomic


class CurvesError(ValueError):
    """Input that gives no curves (reported in one line, exit 2)."""


def read_runs(folders: list[Path]) -> list[tuple[dict, list[dict], bool]]:
    """(config, rows, whether the rows are a curve.csv's windows) of every run below ``folders``: its
    ``episodes.csv``, or where there is none its ``curve.csv``, beside its ``config.json``."""
    runs = []
    for folder in folders:
        if not folder.is_dir():
            raise CurvesError(f"{folder} is not a folder")
        for config_path in sorted(folder.rglob("config.json")):
            episodes, curve = config_path.with_name("episodes.csv"), config_path.with_name("curve.csv")
            source = episodes if episodes.is_file() else curve if curve.is_file() else None
            if source is None:
                continue
            with open(source, newline="") as f:
                rows = list(csv.DictReader(f))
            runs.append(({**FIELD_DEFAULTS, **json.loads(config_path.read_text())}, rows, source == curve))
    if not runs:
        raise CurvesError(f"no run (episodes.csv or curve.csv beside config.json) below {', '.join(map(str, folders))}")
    return runs


def windowed(rows: list[dict], metric: str, window: int, steps: int) -> list[float]:
    """The mean of ``metric`` over the episodes ending in each window of ``window`` steps (NaN where none ended)."""
    sums, counts = [0.0] * math.ceil(steps / window), [0] * math.ceil(steps / window)
    for row in rows:
        value = row.get(metric, "")
        if value in ("", None):
            continue
        k = min((int(row["step"]) - 1) // window, len(sums) - 1)
        sums[k] += float(value)
        counts[k] += 1
    return [s / c if c else math.nan for s, c in zip(sums, counts)]


def windowed_curve(rows: list[dict], metric: str, window: int, steps: int) -> list[float]:
    """``windowed`` from a curve.csv: its windows' means weighted by their episodes, ``window`` a multiple of its
    width (the same numbers as from the episodes, to the last bits of the sums)."""
    width = int(rows[0]["step"])
    if window % width:
        raise CurvesError(f"--window {window} is not a multiple of the curve.csv windows ({width} steps)")
    sums, counts = [0.0] * math.ceil(steps / window), [0] * math.ceil(steps / window)
    for row in rows:
        value, episodes = row.get(metric, ""), int(row["episodes"])
        if value in ("", None) or not episodes:
            continue
        k = min((int(row["step"]) - 1) // window, len(sums) - 1)
        sums[k] += float(value) * episodes
        counts[k] += episodes
    return [s / c if c else math.nan for s, c in zip(sums, counts)]


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the finite values (NaN, NaN if none; s.e. 0 for one)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return mean, math.sqrt(var / len(finite))


def panel_order(value) -> tuple:
    """Numbers in numeric order (chain lengths 2, 4, ..., 128), before anything else in text order."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, str(value))


def curves(runs, by: str, lines: list[str], metric: str, window: int) -> dict:
    """{panel: {line: [(mean, se) per window]}} and, per panel, the step where QRC's ε reaches its end (or None)."""
    steps = max(config["steps"] for config, _, _ in runs)
    grouped: dict = defaultdict(lambda: defaultdict(list))
    for config, rows, is_curve in runs:
        missing = [field for field in [by, *lines] if field not in config]
        if missing:
            raise CurvesError(f"the runs' config.json has no field {missing[0]!r}")
        if rows and metric not in rows[0]:
            name = "curve.csv" if is_curve else "episodes.csv"
            raise CurvesError(f"{name} has no column {metric!r} (columns: {', '.join(rows[0])})")
        line = ", ".join(
            f"{field}={config[field]}" if isinstance(config[field], bool) else str(config[field]) for field in lines
        )
        grouped[config[by]][line].append((windowed_curve if is_curve else windowed)(rows, metric, window, steps))
    table = {
        panel: {line: [mean_se(list(column)) for column in zip(*values)] for line, values in sorted(by_line.items())}
        for panel, by_line in sorted(grouped.items(), key=lambda item: panel_order(item[0]))
    }
    exploration = {}
    for panel in table:
        configs = [config for config, _, _ in runs if config[by] == panel]
        qrc = all(config["agent"] == "qrc" for config in configs)
        exploration[panel] = configs[0]["exploration_fraction"] * configs[0]["steps"] if qrc else None
    return {"table": table, "exploration_end": exploration, "steps": steps, "runs": len(runs), "by": by}


def markdown(result: dict, window: int, by: str) -> str:
    """One row per panel and line, one column per window (headed by the step the window ends at)."""
    windows = len(next(iter(next(iter(result["table"].values())).values())))
    ends = [(k + 1) * window for k in range(windows)]
    heads = [f"{end // 1000}k" if window % 1000 == 0 else f"{end:,}" for end in ends]
    out = [f"| {by} | line | " + " | ".join(heads) + " |", "|---|---|" + "---|" * windows]
    for panel, by_line in result["table"].items():
        for line, values in by_line.items():
            cells = ["—" if math.isnan(m) else f"{m:.2f}" for m, _ in values]
            out.append(f"| {panel} | {line} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(result: dict, path: Path, window: int, metric: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(result["table"])
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(6.0, 4.2 * cols), 3.2 * rows + 0.6), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for line, values in result["table"][panel].items():
            x = [(k + 1) * window for k in range(len(values))]
            mean = [m for m, _ in values]
            ax.plot(x, mean, label=line)
            ax.fill_between(x, [m - s for m, s in values], [m + s for m, s in values], alpha=0.25)
        if result["exploration_end"][panel]:
            ax.axvline(
                result["exploration_end"][panel], color="grey", linestyle="--", linewidth=1, label="ε at its end"
            )
        ax.set_title(panel if isinstance(panel, str) else f"{result['by']} = {panel}", fontsize=10)
        ax.set_xlabel("training steps")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.6 / (3.2 * rows + 0.6), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    plt.close(fig)
    print(f"plot: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--by", default="env", help="config field whose values are the panels (env, chain_length)")
    parser.add_argument("--lines", nargs="+", default=["agent", "cell", "mode"], help="config fields of a line")
    parser.add_argument("--metric", default="return", help="episodes.csv column (return, success, length)")
    parser.add_argument("--window", type=int, default=50_000, help="training steps per window")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--table", type=Path, default=None)
    args = parser.parse_args()
    try:
        if args.window < 1:
            raise CurvesError(f"--window must be at least 1, got {args.window}")
        result = curves(read_runs(args.folders), args.by, args.lines, args.metric, args.window)
    except CurvesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = markdown(result, args.window, args.by)
    print(f"{args.metric}, mean over seeds, per {args.window:,}-step window ({result['runs']} runs)\n{text}")
    if args.table:
        write_atomic(args.table, text + "\n")
    if args.plot:
        title = f"{args.metric} per {args.window:,} steps, mean ± s.e. over seeds"
        plot(result, args.plot, args.window, args.metric, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
