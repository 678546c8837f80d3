"""RTRL staleness on KMemoryChain (paper §4.4): how far online RTRL sensitivities drift from the current network's,
and whether recomputing them helps.

Online RTRL advances S_t = D_t ⊙ (λ_t S_{t-1} + J_t) with the parameters of each step; after streaming updates S_t is
no longer ∂h_t/∂p of the current network. Every ``--measure-every`` steps (default 7) each run replays its running episode under
the current parameters and records ‖S_online - S_fresh‖ / ‖S_fresh‖ (``sensitivity_staleness``, averaged over the
run and both networks). ``rtrl_refresh = 1`` replaces S_t by that replay after every update (exact current-parameter
sensitivities, O(episode length) per step); 0 is standard RTRL. Stream AC(λ), RTU with RTRL, one resumable sweep
(chain lengths and seeds packed into populations), a table and a plot.

    python benchmarks/staleness.py --steps 60000 --seeds 3 --out runs/staleness --plot assets/staleness.png
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rtu_core.config import ConfigError
from rtu_core.sweep import Grid, LocalBackend, aggregate, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bits", nargs="+", type=int, default=[1, 2], help="K: context bits recalled together")
    parser.add_argument("--lengths", nargs="+", type=int, default=[4, 8, 16], help="L: chain lengths")
    parser.add_argument("--refresh", nargs="+", type=int, default=[0, 1], help="rtrl_refresh values (0: standard)")
    # prime, so that it does not keep landing on episode ends (a 5-step L = 4 episode ends on every 10th step,
    # where the replayed sensitivities are zero and the relative error is undefined)
    parser.add_argument("--measure-every", type=int, default=7)
    parser.add_argument("--hidden-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("runs/staleness"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()

    grid = Grid({"env": "kmemory_chain", "cell": "rtu", "mode": "rtrl", "steps": args.steps, "hidden_size": args.hidden_size,
                 "width": args.width, "staleness_every": args.measure_every, "eval_episodes": 100},
                {"num_bits": args.bits, "rtrl_refresh": args.refresh, "chain_length": args.lengths}, args.seeds)
    done, skipped = run_sweep(args.out, grid, LocalBackend(args.workers))
    print(f"{done} runs trained, {skipped} already finished\n{(args.out / 'summary.md').read_text()}")
    if args.plot:
        plot(aggregate(args.out, grid), args)


def plot(rows: list[dict], args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (drift, success) = plt.subplots(1, 2, figsize=(10, 3.8))
    for k in args.bits:
        for refresh in args.refresh:
            cells = sorted((r for r in rows if r["num_bits"] == k and r["rtrl_refresh"] == refresh),
                           key=lambda r: r["chain_length"])
            label = f"K = {k}, " + ("standard RTRL" if refresh == 0 else f"refresh every {refresh}")
            style = dict(marker="o", ls="-" if refresh == 0 else "--", capsize=3, label=label)
            lengths = [r["chain_length"] for r in cells]
            # not measurable (None) where every measurement fell on an episode's first step
            drift.errorbar(lengths, [np.nan if r["sensitivity_staleness"] is None else r["sensitivity_staleness"]
                                     for r in cells], [r["sensitivity_staleness_se"] or 0 for r in cells], **style)
            success.errorbar(lengths, [r["eval_success_rate"] for r in cells],
                             [r["eval_success_rate_se"] or 0 for r in cells], **style)
    for ax in (drift, success):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("chain length L")
    drift.set_ylabel("‖S_online − S_fresh‖ / ‖S_fresh‖")
    drift.set_title("sensitivity staleness when measured (mean over run)")
    success.set_ylabel("greedy success (all K bits right)")
    success.set_title(f"{args.steps:,} steps, {args.seeds} seeds")
    drift.legend(fontsize=7)
    success.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    try:
        main()
    except ConfigError as error:  # e.g. an --out that holds another sweep: one line, nothing written
        sys.exit(f"error: {error}")
