"""MemoryChain chain-length sweep: RTU-RTRL vs TBPTT(1) RTU / GRU / FFN (the paper's Fig. 2 question).

Defaults are the paper's settings (``docs/method.md`` §7): QRC(λ), RTU 192 units, feature width 128, 5 seeds,
L = 2 ... 128; the paper trains 500k steps per run. Metric: greedy success rate over ``--eval-episodes`` episodes
after training, and the fraction of seeds solved (greedy evaluation return > 0.5, the paper's criterion applied to
a greedy evaluation rather than to its training return).

Each method trains its chain lengths x seeds as populations (members differ only in seed and chain length): as many
as there are workers, member i in population i mod workers, so that a slow method (the GRU) is shared out
rather than left to one process at the end; the populations run in parallel processes, the costliest first.
Every member writes its own results folder
(``OUT/<method>/L<length>/seed_<seed>/``). When the command is run again, finished members are skipped (a member's
numbers equal its solo run's, so the others train the same without them: a longer ``--lengths`` list adds only
the new chains), and an unfinished population continues from its last checkpoint (``--checkpoint-every``,
``OUT/<method>/checkpoints/``; run it again with the same ``--workers``). The populations train on the sweeps'
backend (``rtu_core.sweep``): Ctrl-C or SIGTERM makes each save its checkpoint at its next step, then stop.
Then a table (``OUT/table.md``) and a plot of greedy-evaluation success rate vs chain length.

    python benchmarks/memory_chain.py --steps 100000 --seeds 5 --out runs/memory_chain \
        --plot assets/memory_chain.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from rtu_core import TrainConfig
from rtu_core.config import METHOD_LABELS as LABELS
from rtu_core.config import METHODS
from rtu_core.results import write_atomic
from rtu_core.stops import sigterm_as_interrupt
from rtu_core.sweep import LocalBackend, store
from rtu_core.sweep.packing import Population, checkpoint_path
from rtu_core.sweep.store import write_files


def run_name(method: str, config: TrainConfig) -> str:
    """A member's results folder under OUT: ``<method>/L<length>/seed_<seed>``."""
    return f"{method}/L{config.chain_length}/seed_{config.seed}"


def member_dir(out: Path, method: str, config: TrainConfig) -> Path:
    return out / run_name(method, config)


# what an agent-step of each method costs relative to the RTU's at the paper's size (docs/performance.md): only the
# order in which populations start, costliest first, so that the last to finish is a short one
RELATIVE_COST = {"gru-tbptt": 2.0, "ffn-tbptt": 0.1}


def populations(method: str, members: list[TrainConfig], out: Path, workers: int) -> list[list[TrainConfig]]:
    """The method's members dealt into ``workers`` populations (member i into population i mod workers), each
    without its finished members; empty populations left out. Dealt from the whole list, so that a re-run forms
    the same populations and finds their checkpoints."""
    dealt = [members[i::workers] for i in range(workers)]
    return [pending for part in dealt if (pending := [m for m in part if not finished(out, method, m)])]


def population(method: str, members: list[TrainConfig], out: Path, checkpoint_every: int) -> Population:
    """One population of the sweep backend, its checkpoint in ``OUT/<method>/checkpoints/`` named by its members."""
    named = [(run_name(method, m), m) for m in members]
    folder = out / method / "checkpoints"
    return Population(named, checkpoint_path(folder, named) if checkpoint_every else None, checkpoint_every)


def write_results(out: Path, files: dict[str, dict[str, str]]) -> None:
    """Each finished member's files into its folder (``OUT/<run name>/``, summary.json last)."""
    for name, run_files in files.items():
        write_files(out / name, run_files)


def finished(out: Path, method: str, member: TrainConfig) -> bool:
    """Whether this member's results are written and its run ended with this very config (``store.finished``)."""
    return store.finished(member_dir(out, method, member), member)


def aggregate(out: Path, methods: list[str], lengths: list[int], seeds: list[int]) -> dict:
    table = {}
    for method in methods:
        for length in lengths:
            runs = [json.loads((out / method / f"L{length}" / f"seed_{s}" / "summary.json").read_text()) for s in seeds]
            # a member that diverged (non-finite TD error) has no evaluation: it counts as not solved, and the
            # mean success is over the members that trained to the end
            rates = np.array([r["eval_success_rate"] for r in runs if r["status"] == "completed"], dtype=float)
            table[(method, length)] = dict(
                mean=float(rates.mean()) if len(rates) else float("nan"),
                std=float(rates.std()) if len(rates) else float("nan"),
                solved=float(np.mean([r["status"] == "completed" and r["eval_return"] > 0.5 for r in runs])),
                diverged=sum(r["status"] == "diverged" for r in runs),
            )
    return table


def cell(entry: dict) -> str:
    diverged = f", {entry['diverged']} div." if entry["diverged"] else ""
    return f"{entry['mean']:.2f} ({entry['solved']:.1f}{diverged})"


def write_table(out: Path, table: dict, methods, lengths, seeds, command: str) -> str:
    lines = [
        "Greedy-evaluation success rate after training (mean over seeds; chance = 0.50), "
        "and in brackets the fraction of seeds solved (eval return > 0.5); a seed whose TD error became non-finite "
        "is counted as not solved and left out of the mean (marked 'k div.').",
        "",
        "| method | " + " | ".join(f"L={L}" for L in lengths) + " |",
        "|---|" + "---|" * len(lengths),
    ]
    for method in methods:
        cells = [cell(table[(method, L)]) for L in lengths]
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    lines += ["", f"{len(seeds)} seeds; command: `{command}`"]
    text = "\n".join(lines) + "\n"
    write_atomic(out / "table.md", text)
    return text


def plot(path: Path, table: dict, methods, lengths, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for method in methods:
        mean = np.array([table[(method, L)]["mean"] for L in lengths])
        std = np.array([table[(method, L)]["std"] for L in lengths])
        solved = [table[(method, L)]["solved"] for L in lengths]
        (line,) = axes[0].plot(lengths, mean, marker="o", label=LABELS[method])
        axes[0].fill_between(lengths, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        axes[1].plot(lengths, solved, marker="o", color=line.get_color(), label=LABELS[method])
    axes[0].axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[0].set(xscale="log", xlabel="chain length L", ylabel="greedy success rate", ylim=(0.3, 1.03))
    axes[1].set(xscale="log", xlabel="chain length L", ylabel="fraction of seeds solved", ylim=(-0.03, 1.03))
    for ax in axes:
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(lengths, [str(L) for L in lengths])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--agent", default="qrc", help="qrc: the paper's agent for this task")
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--width", type=int, default=None, help="feature width (default: the paper's preset, 128)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--gamma", type=float, default=0.99, help="discount (0.999: a docs/method.md §8 diagnostic)")
    parser.add_argument(
        "--rtu-r-min", type=float, default=0.0, help="initial RTU moduli r² ~ U(r_min², 1) (0.99: a §8 diagnostic)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=10_000,
        help="steps between checkpoints of each method's population (0: none); a re-run continues from them",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/memory_chain"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    parts = []  # (method, members) of each population
    for method in args.methods:
        cell, mode = METHODS[method]
        base = TrainConfig(
            agent=args.agent,
            cell=cell,
            mode=mode,
            steps=args.steps,
            hidden_size=args.hidden_size,
            width=args.width,
            eval_episodes=args.eval_episodes,
            gamma=args.gamma,
            rtu_r_min=args.rtu_r_min,
        )
        members = [dataclasses.replace(base, chain_length=L, seed=s) for L in args.lengths for s in seeds]
        pending = populations(method, members, args.out, args.workers)
        skipped = len(members) - sum(len(part) for part in pending)
        if skipped:
            print(f"[{method}] {skipped} of {len(members)} runs already finished, skipped")
        parts += [(method, part) for part in pending]
    parts.sort(key=lambda part: -len(part[1]) * RELATIVE_COST.get(part[0], 1.0))
    jobs = [population(method, part, args.out, args.checkpoint_every) for method, part in parts]
    total, done, shown, started = sum(len(part) for _, part in parts) * args.steps, 0, 0.0, time.time()

    def on_progress(agent_steps: int) -> None:
        nonlocal done, shown
        done += agent_steps
        if done / total >= shown + 0.05 or done == total:
            shown = done / total
            rate = done / max(time.time() - started, 1e-9)
            print(f"{done:,}/{total:,} agent-steps ({100 * shown:.0f}%), {rate:.0f} agent-steps/s", flush=True)

    def on_result(files: dict) -> None:
        write_results(args.out, files)
        print(f"{len(files)} runs finished: {', '.join(sorted(files))}", flush=True)

    try:  # the sweep's backend: on Ctrl-C or SIGTERM each population saves its checkpoint at its next step first
        with sigterm_as_interrupt():
            LocalBackend(args.workers).run(jobs, on_result, on_progress)
    except KeyboardInterrupt:
        print(f"interrupted; checkpoints kept in {args.out}: the same command continues", file=sys.stderr)
        return 130
    table = aggregate(args.out, args.methods, args.lengths, seeds)
    command = "python " + " ".join(sys.argv)
    print(write_table(args.out, table, args.methods, args.lengths, seeds, command))
    if args.plot:
        plot(
            args.plot,
            table,
            args.methods,
            args.lengths,
            f"MemoryChain, {args.agent}, {args.steps:,} steps, {len(seeds)} seeds, hidden {args.hidden_size}",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
