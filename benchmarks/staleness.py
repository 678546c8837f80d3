"""RTRL staleness on the paper's KMemoryChain (§4.4): plain vs Taylor-corrected RTRL, Stream AC(λ) and QRC(λ).

Online RTRL advances S_t = D_t ⊙ (λ_t S_{t-1} + J_t) with the parameters of each step, so after streaming updates S_t
is no longer ∂h_t/∂p of the current network. Every ``--measure-every`` steps each run replays its running episode
under the current parameters and records ‖S - S_replay‖ / ‖S_replay‖ (with ``taylor_sensitivity``: S + C), written
per run to ``staleness.csv``; the table averages it over the run. Task settings are the paper's presets
(``docs/method.md`` §7). One resumable sweep (k and seeds packed into populations; each population keeps a
checkpoint, so a run of the paper's 500k steps continues across sittings), a table and a plot.

    python benchmarks/staleness.py --steps 20000 --seeds 2 --out runs/staleness-k --plot assets/staleness.png
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from rtu_core.config import ConfigError
from rtu_core.sweep import Grid, LocalBackend, aggregate, run_sweep

AGENT_LABELS = {"stream_ac": "Stream AC(λ)", "qrc": "QRC(λ)"}
CORRECTIONS = {"plain": False, "taylor": True}  # --corrections name -> the config's taylor_sensitivity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--k", nargs="+", type=int, default=[4, 8, 16], help="KMemoryChain memory lengths")
    parser.add_argument("--agents", nargs="+", default=["stream_ac", "qrc"], choices=list(AGENT_LABELS))
    parser.add_argument(
        "--corrections", nargs="+", default=["plain", "taylor"], choices=list(CORRECTIONS), help="RTRL variants to run"
    )
    # prime, so that it does not keep landing on the same place in the episodes (8·k steps long)
    parser.add_argument("--measure-every", type=int, default=13)
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="steps between checkpoints (0: none)")
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("runs/staleness-k"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()

    grid = Grid(
        {
            "env": "kmemory_chain",
            "cell": "rtu",
            "steps": args.steps,
            "hidden_size": args.hidden_size,
            "width": args.width,
            "staleness_every": args.measure_every,
            "eval_episodes": 10,
        },
        {
            "agent": args.agents,
            "taylor_sensitivity": [CORRECTIONS[c] for c in args.corrections],
            "chain_length": args.k,
        },
        args.seeds,
    )
    done, skipped = run_sweep(args.out, grid, LocalBackend(args.workers), checkpoint_every=args.checkpoint_every)
    print(f"{done} runs trained, {skipped} already finished\n{(args.out / 'summary.md').read_text()}")
    if args.plot:
        plot(aggregate(args.out, grid), args)


def staleness_curve(run_dir: Path, bins: int = 20) -> tuple[list[float], list[float]]:
    """(step, mean staleness) in ``bins`` equal spans of the run."""
    rows = [(int(r["step"]), float(r["staleness"])) for r in csv.DictReader((run_dir / "staleness.csv").open())]
    if not rows:
        return [], []
    last = rows[-1][0]
    spans: list[list[float]] = [[] for _ in range(bins)]
    for step, value in rows:
        spans[min(bins - 1, (step - 1) * bins // last)].append(value)
    centres = [(i + 0.5) * last / bins for i, span in enumerate(spans) if span]
    return centres, [sum(span) / len(span) for span in spans if span]


def plot(rows: list[dict], args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    over_time, by_k, accuracy = axes
    colours = dict(zip(args.k, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")))
    for agent in args.agents:
        for taylor in (CORRECTIONS[c] for c in args.corrections):
            cells = sorted(
                (r for r in rows if r["agent"] == agent and r["taylor_sensitivity"] == taylor),
                key=lambda r: r["chain_length"],
            )
            label = f"{AGENT_LABELS[agent]}, " + ("Taylor-corrected" if taylor else "plain RTRL")
            style = dict(marker="o" if agent == "stream_ac" else "s", ls="--" if taylor else "-", capsize=3)
            ks = [r["chain_length"] for r in cells]
            by_k.errorbar(
                ks,
                [np.nan if r["sensitivity_staleness"] is None else r["sensitivity_staleness"] for r in cells],
                [r["sensitivity_staleness_se"] or 0 for r in cells],
                label=label,
                **style,
            )
            accuracy.errorbar(
                ks,
                [r["eval_success_rate"] for r in cells],
                [r["eval_success_rate_se"] or 0 for r in cells],
                label=label,
                **style,
            )
            if agent != args.agents[0]:
                continue
            for k in args.k:
                runs = sorted(
                    (args.out / "runs").glob(f"agent={agent},taylor_sensitivity={taylor},chain_length={k},seed=*")
                )
                curves = [staleness_curve(run) for run in runs if (run / "staleness.csv").exists()]
                curves = [c for c in curves if c[0]]
                if curves:
                    steps = curves[0][0]
                    values = np.nanmean([np.interp(steps, *c) for c in curves], axis=0)
                    over_time.plot(
                        steps,
                        values,
                        ls=style["ls"],
                        color=colours[k],
                        label=f"k = {k}, " + ("Taylor" if taylor else "plain"),
                    )
    over_time.set_title(f"{AGENT_LABELS[args.agents[0]]}: staleness during training (mean of seeds)")
    over_time.set_xlabel("step")
    over_time.set_yscale("log")
    over_time.set_ylabel("‖S − S_replay‖ / ‖S_replay‖")
    by_k.set_title("staleness, mean over the run")
    by_k.set_ylabel("‖S − S_replay‖ / ‖S_replay‖")
    by_k.set_yscale("log")
    accuracy.set_title(f"greedy accuracy after {args.steps:,} steps ({args.seeds} seeds)")
    accuracy.set_ylabel("fraction of recalls right (chance 0.5)")
    accuracy.axhline(0.5, color="grey", lw=0.8, ls=":")
    for ax in (by_k, accuracy):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (recall the bit from k steps back)")
        ax.set_xticks(args.k, [str(k) for k in args.k])
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    try:
        main()
    except ConfigError as error:  # e.g. an --out that holds another sweep: one line, nothing written
        sys.exit(f"error: {error}")
