"""Where the reproduction runs stand: under each results folder, the finished runs (by status) and, for every
population still under way, the step its checkpoint holds.

    python benchmarks/progress.py                         # the folders benchmarks/reproduce.sh writes
    python benchmarks/progress.py results/staleness_500k  # or any results folders

A run is finished when its ``summary.json`` says so (``rtu_core.sweep.store.FINISHED``); a checkpoint is any
``checkpoints/*.pt`` below the folder (loading one takes a second or two: it holds the whole population).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from rtu_core.config import ConfigError
from rtu_core.training import load_checkpoint

REPRODUCTION = [
    "results/staleness_500k",
    "results/memory_chain_500k",
    "results/popgym_1m",
    "results/mujoco_500k",
    "results/memory_chain_500k_r099",
    "results/memory_chain_500k_g0999",
]


def run_statuses(folder: Path) -> Counter:
    """How many runs below ``folder`` ended with each status (from their summary.json files; a population's own
    summary, with a list of runs, is not a run)."""
    statuses: Counter = Counter()
    for path in folder.rglob("summary.json"):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if "runs" not in summary and "status" in summary:
            statuses[summary["status"]] += 1
    return statuses


def checkpoint_steps(folder: Path) -> list[tuple[Path, dict | ConfigError]]:
    """Every checkpoint below ``folder`` with (step reached, steps of a run, the members' configs), or the error
    that says it does not load."""
    found = []
    for path in sorted(folder.rglob("checkpoints/*.pt")):
        try:
            state = load_checkpoint(path)
        except ConfigError as error:
            found.append((path, error))
            continue
        found.append(
            (path, {"step": state["loop"]["step"], "steps": state["config"]["steps"], "members": state["members"]})
        )
    return found


def method_of(members: list[dict]) -> str:
    """What a population trains, in a few words: agent, cell and gradient (and the Taylor correction)."""
    first = members[0]
    taylor = ", Taylor-corrected" if first.get("taylor_sensitivity") else ""
    return f"{first['agent']}, {first['cell']}-{first['mode']}{taylor}"


def report(folder: Path) -> str:
    if not folder.exists():
        return f"{folder}: not started"
    statuses = run_statuses(folder)
    finished = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())) or "none"
    lines = [f"{folder}: runs finished: {finished}"]
    for path, state in checkpoint_steps(folder):
        if isinstance(state, ConfigError):
            lines.append(f"  damaged: {state}")
            continue
        step, steps, members = state["step"], state["steps"], state["members"]
        lines.append(
            f"  under way: {method_of(members)}, {len(members)} members at step {step:,} of {steps:,} "
            f"({100 * step / steps:.0f}%; {path.relative_to(folder)})"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[Path(f) for f in REPRODUCTION])
    args = parser.parse_args()
    for folder in args.folders:
        print(report(folder), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
