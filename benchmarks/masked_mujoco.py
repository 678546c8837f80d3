"""Masked MuJoCo: streaming Stream AC(λ) with RTU-RTRL vs TBPTT(1) baselines vs batched PPO, at an affordable budget.

Robots HalfCheetah, Hopper, Walker2d, Ant (gymnasium v5) with the observation masked to positions (P) or
velocities (V) or full (F). Two resumable sweeps (``comparison.run_comparison``) into OUT/streaming and
OUT/ppo, then one
table of the mean episodic return over each run's last 100 training episodes (mean ± s.e. over seeds), and one of
each streaming method's mean as a fraction of PPO's on the same task (the paper's framing; OUT/fraction_of_ppo.md).
Settings are the paper's presets (``docs/method.md`` §7): Stream AC(λ) with a Gaussian policy, tanh Dense 64 blocks
around an RTU of 192 units; PPO as in the paper's Brax setting, one environment, 2048-step rollouts, 32 minibatches,
4 epochs. The paper's budget is 2M steps per run.

    python benchmarks/masked_mujoco.py --steps 100000 --seeds 3 --robots Hopper --masks P V --out runs/mujoco \
        --plot assets/mujoco.png
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from comparison import fraction_of, plot_comparison, run_comparison

from rtu_core.config import METHOD_LABELS, METHOD_OF_CELL, ConfigError
from rtu_core.envs import MUJOCO_ROBOTS
from rtu_core.results import write_atomic
from rtu_core.sweep import Grid, LocalBackend

STREAMING_METHODS = ["rtu-rtrl", "rtu-tbptt", "gru-tbptt", "ffn-tbptt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--robots", nargs="+", default=list(MUJOCO_ROBOTS), choices=MUJOCO_ROBOTS)
    parser.add_argument("--masks", nargs="+", default=["P", "V"], choices=["F", "P", "V"])
    parser.add_argument("--methods", nargs="+", default=STREAMING_METHODS, choices=STREAMING_METHODS)
    parser.add_argument("--ppo-cells", nargs="*", default=["rtu"], choices=["rtu", "gru", "ffn"])
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="steps between checkpoints (0: none)")
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--width", type=int, default=None, help="feature width (default: the paper's preset, 64)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("runs/mujoco"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()

    axes = {"env": [f"mujoco:{robot}" for robot in args.robots], "mask": args.masks}
    common = dict(
        steps=args.steps,
        hidden_size=args.hidden_size,
        eval_episodes=3,
        **({"width": args.width} if args.width else {}),
    )  # absent when off: resumable
    grids = {"Streaming": Grid(common, {**axes, "method": args.methods}, args.seeds)}
    if args.ppo_cells:
        ppo_methods = [METHOD_OF_CELL[c] for c in args.ppo_cells]
        grids["PPO"] = Grid({**common, "agent": "ppo"}, {**axes, "method": ppo_methods}, args.seeds)
    markdown, rows = run_comparison(
        args.out,
        grids,
        LocalBackend(args.workers),
        lambda point: f"{point['env'].removeprefix('mujoco:')}-{point['mask']}",
        digits=1,
        checkpoint_every=args.checkpoint_every,
    )
    print(f"mean return over the last 100 training episodes, {args.steps:,} steps, {args.seeds} seeds\n{markdown}")
    if args.ppo_cells:
        recovered = fraction_of(rows, f"PPO, {METHOD_LABELS[METHOD_OF_CELL[args.ppo_cells[0]]]}")
        write_atomic(args.out / "fraction_of_ppo.md", recovered)
        print(f"fraction of PPO's return recovered (streaming mean / PPO mean, same task)\n{recovered}")
    if args.plot:
        plot_comparison(
            rows,
            args.plot,
            f"Masked MuJoCo, {args.steps:,} steps per run, {args.seeds} seeds (paper: 2M steps)",
            "mean episodic return (last 100 episodes)",
        )


if __name__ == "__main__":
    try:
        main()
    except ConfigError as error:  # e.g. an --out that holds another sweep: one line, nothing written
        sys.exit(f"error: {error}")
