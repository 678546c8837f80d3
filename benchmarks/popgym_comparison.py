"""POPGym (Easy): streaming Stream AC(λ) / QRC(λ) with RTU-RTRL vs TBPTT(1) baselines vs batched PPO.

Resumable sweeps (``comparison.run_comparison``, local processes) into OUT/stream_ac, OUT/qrc and OUT/ppo, then
one table of the mean episodic return over each run's last 100 training episodes (mean ± s.e. over seeds) and a
bar plot. Every population keeps a checkpoint (``--checkpoint-every``), so a run of millions of steps can be split
across sittings: the same command continues it.
Settings are the paper's presets for POPGym (``docs/method.md`` §7: κ_actor 3, κ_critic 2, η 0.095, Dense 64 blocks
around an RTU of 192 units; PPO 32 envs x 64 steps, 32 minibatches, 4 epochs). The paper's budget is 5M steps per run.

    python benchmarks/popgym_comparison.py --steps 50000 --seeds 2 --out runs/popgym --plot assets/popgym.png
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from comparison import plot_comparison, run_comparison, table

from rtu_core.config import METHOD_OF_CELL, ConfigError
from rtu_core.envs import POPGYM_TASKS
from rtu_core.results import write_atomic
from rtu_core.sweep import Grid, LocalBackend

STREAMING_METHODS = ["rtu-rtrl", "rtu-tbptt", "gru-tbptt", "ffn-tbptt"]
# POPGym scales every episode's return to [-1, 1]; the paper's plots divide by the best expected return of each
# task, which is 1 except where chance caps it (docs/method.md §5)
BEST_RETURN = {"HigherLower": 0.507, "Concentration": 0.816}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--tasks", nargs="+", default=list(POPGYM_TASKS), choices=POPGYM_TASKS)
    parser.add_argument("--methods", nargs="+", default=STREAMING_METHODS, choices=STREAMING_METHODS)
    parser.add_argument(
        "--agents", nargs="+", default=["stream_ac"], choices=["stream_ac", "qrc"], help="streaming agents to run"
    )
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="steps between checkpoints (0: none)")
    parser.add_argument(
        "--ppo-cells",
        nargs="*",
        default=["rtu"],
        choices=["rtu", "gru", "ffn"],
        help="PPO baselines to run (none: streaming only)",
    )
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--width", type=int, default=None, help="feature width (default: the paper's preset, 64)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("runs/popgym"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()

    envs = [f"popgym:{task}" for task in args.tasks]
    common = dict(
        steps=args.steps,
        hidden_size=args.hidden_size,
        eval_episodes=20,
        **({"width": args.width} if args.width else {}),
    )  # absent when off: earlier sweeps stay resumable
    grids = {}
    if "stream_ac" in args.agents:  # the default agent; the label keeps the folder of earlier sweeps
        grids["Streaming"] = Grid(common, {"env": envs, "method": args.methods}, args.seeds)
    if "qrc" in args.agents:
        grids["QRC"] = Grid({**common, "agent": "qrc"}, {"env": envs, "method": args.methods}, args.seeds)
    if args.ppo_cells:
        ppo_methods = [METHOD_OF_CELL[c] for c in args.ppo_cells]
        grids["PPO"] = Grid({**common, "agent": "ppo"}, {"env": envs, "method": ppo_methods}, args.seeds)
    markdown, rows = run_comparison(
        args.out,
        grids,
        LocalBackend(args.workers),
        lambda point: point["env"].removeprefix("popgym:").removesuffix("Easy"),
        checkpoint_every=args.checkpoint_every,
    )
    print(f"mean return over the last 100 training episodes, {args.steps:,} steps, {args.seeds} seeds\n{markdown}")
    rows = normalised(rows)
    markdown = table(rows)
    write_atomic(args.out / "table_normalised.md", markdown)
    print(f"normalised as the paper's plots (return / the task's best expected return)\n{markdown}")
    if args.plot:
        plot_comparison(
            rows,
            args.plot,
            f"POPGym (Easy), {args.steps:,} steps per run, {args.seeds} seeds (paper: 5M steps)",
            "normalised return (last 100 episodes)",
        )


def normalised(rows: list[dict]) -> list[dict]:
    """The rows with mean and s.e. divided by the task's best expected return (``BEST_RETURN``)."""
    return [
        {
            **row,
            **{k: None if row[k] is None else row[k] / BEST_RETURN.get(row["task"], 1.0) for k in ("mean", "se")},
        }
        for row in rows
    ]


if __name__ == "__main__":
    try:
        main()
    except ConfigError as error:  # e.g. an --out that holds another sweep: one line, nothing written
        sys.exit(f"error: {error}")
