"""What the paper's POPGym and masked-MuJoCo experiments cost on this machine, from rates measured here.

For every method a reproduction runs (streaming RTU-RTRL with Stream AC(λ) and QRC(λ), the GRU trained by TBPTT(1),
batched PPO with the RTU) it trains one run at the paper's size on one task for ``--steps`` steps -- seeds packed as
one population, as the benchmarks pack them -- and takes the rate after the first fifth of the steps (PPO: over
a whole rollout and its update). Then it projects the core-hours of a budget (steps x seeds x tasks per method) and
the wall time on ``--cores`` processes. The measured rates go to ``OUT/budget.json``, the table to stdout and
``OUT/budget.md``.

    python benchmarks/budget.py --out runs/budget            # ~10 minutes
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from rtu_core import Progress, RunEnd, TrainConfig, train
from rtu_core.results import write_atomic

# (suite, task used for the rate, tasks in the budget, steps per run in the budget, the paper's budget)
SUITES = {
    "popgym": ("popgym:RepeatFirstEasy", 5, 1_000_000, 5_000_000),
    "mujoco": ("mujoco:Hopper", 4, 500_000, 2_000_000),  # Hopper and Walker2d, P and V
}
METHODS = {
    "popgym": {
        "Stream AC, RTU-RTRL": dict(agent="stream_ac", cell="rtu", mode="rtrl"),
        "QRC, RTU-RTRL": dict(agent="qrc", cell="rtu", mode="rtrl"),
        "Stream AC, GRU-TBPTT(1)": dict(agent="stream_ac", cell="gru", mode="tbptt"),
        "PPO, RTU (RTRL in sequences)": dict(agent="ppo", cell="rtu", mode="rtrl"),
    },
    "mujoco": {
        "Stream AC, RTU-RTRL": dict(agent="stream_ac", cell="rtu", mode="rtrl"),
        "Stream AC, GRU-TBPTT(1)": dict(agent="stream_ac", cell="gru", mode="tbptt"),
        "PPO, RTU (RTRL in sequences)": dict(agent="ppo", cell="rtu", mode="rtrl"),
    },
}


def rate(config: TrainConfig) -> float:
    """Agent-steps per second of one process after the first fifth of the run (PPO: over its second half, one
    rollout of 2048 environment steps and its update when ``steps`` is 4096)."""
    start, warm = None, config.steps // 2 if config.agent == "ppo" else config.steps // 5
    for event in train(config):
        if isinstance(event, Progress) and start is None and event.step >= warm:
            start = (event.step, time.perf_counter())
        if isinstance(event, RunEnd):
            if event.status != "completed" or start is None:
                raise RuntimeError(f"{config.agent}/{config.cell} on {config.env}: {event.status} {event.message}")
            return (event.step - start[0]) * config.population / (time.perf_counter() - start[1])
    raise RuntimeError("no RunEnd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4096, help="steps per measured run (PPO: a multiple of 2048)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of a budget run (packed as one population)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--suites", nargs="+", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--out", type=Path, default=Path("runs/budget"))
    args = parser.parse_args()
    rates = {}
    for suite in args.suites:
        env, _, _, _ = SUITES[suite]
        for label, method in METHODS[suite].items():
            batched = method["agent"] == "ppo"
            config = TrainConfig(
                env=env,
                mask="V" if suite == "mujoco" else "F",
                steps=args.steps,
                population=1 if batched else args.seeds,
                eval_episodes=0,
                progress_every=64,
                **method,
            )
            rates[(suite, label)] = rate(config)
            print(f"{suite:7s} {label:30s} {rates[(suite, label)]:8.0f} agent-steps/s", flush=True)
    lines = [
        f"Rates at the paper's size on {platform.machine()}, one process each, measured with "
        f"`python benchmarks/budget.py --steps {args.steps} --seeds {args.seeds}`; wall time on {args.cores} "
        "processes.",
        "",
        "| suite | method | agent-steps/s | budget (tasks x seeds x steps) | core-hours | wall hours "
        "| paper's budget |",
        "|---|---|---|---|---|---|---|",
    ]
    for (suite, label), value in rates.items():
        _, tasks, steps, paper = SUITES[suite]
        core_hours = tasks * args.seeds * steps / value / 3600
        paper_hours = tasks * 5 * paper / value / 3600
        lines.append(
            f"| {suite} | {label} | {value:,.0f} | {tasks} x {args.seeds} x {steps:,} | {core_hours:,.1f} | "
            f"{core_hours / args.cores:,.1f} | {paper_hours:,.0f} core-hours ({tasks} x 5 x {paper:,}) |"
        )
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "budget.md", markdown)
    write_atomic(
        args.out / "budget.json", json.dumps({f"{s}/{label}": v for (s, label), v in rates.items()}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
