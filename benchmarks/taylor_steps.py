"""When the Taylor correction of stale RTRL sensitivities helps and when it hurts: step by step inside a learning agent.

The run: KMemoryChain k = 4, Stream AC(λ), RTU 16 / width 16, the eager engine, seed 3, the Taylor correction on,
4,000 steps (the run whose staleness spiked to ~40 near step 3,100). Over a window of steps, after every update,
for the actor and the critic: the size of the step the RTU's parameters just took (‖Δθ‖, all four parameters), and
the relative error against the replay under the current parameters of the plain sensitivities S and of the
corrected ones S + C. Writes one row per step to ``OUT/steps.csv`` and prints, binned by the actor's step size,
how often S + C is closer to the replay than S.

    python benchmarks/taylor_steps.py --steps 4000 --window 1100 --out results/taylor_steps
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rtu_core import Progress, TrainConfig, training

BINS = (0.0, 0.01, 0.03, 0.06, 0.1, np.inf)


def relative_error(online: tuple, fresh: tuple) -> float:
    """‖online − fresh‖ / ‖fresh‖ over all parameters' sensitivities; NaN where fresh is zero (an episode's start)."""
    online, fresh = (torch.cat([t.flatten() for t in ts]) for ts in (online, fresh))
    return float((online - fresh).norm() / fresh.norm()) if fresh.norm() > 0 else float("nan")


def rtu_parameters(network) -> torch.Tensor:
    cell = network.cell
    return torch.cat([p.detach().flatten() for p in (cell.nu_log, cell.theta_log, cell.B_real, cell.B_imag)])


def measure(config: TrainConfig, first: int, last: int) -> pd.DataFrame:
    """One row per step in [first, last]: step, |δ|, and per network ‖Δθ‖, the error of S and of S + C."""
    runs = []

    class Captured(training.Run):  # the loop's run, so that its agent can be read between steps
        def __init__(self, config):
            super().__init__(config)
            runs.append(self)

    rows, previous = [], None
    original, training.Run = training.Run, Captured
    try:
        for event in training.train(config):
            if not isinstance(event, Progress):
                continue
            agent = runs[0].agent
            current = {name: rtu_parameters(net) for name, net in agent.networks.items()}
            if previous is not None and first <= event.step <= last:
                row = {"step": event.step, "abs_td_error": float(event.td_error[0])}
                fresh = agent.fresh_memories()
                for name, memory in agent.memories.items():
                    replay = tuple(fresh[name].sensitivities.values())
                    row[f"{name}_step"] = float((current[name] - previous[name]).norm())
                    row[f"{name}_error_plain"] = relative_error(memory[1:5], replay)
                    row[f"{name}_error_corrected"] = relative_error(memory.credited_sensitivities, replay)
                rows.append(row)
            previous = current
            if event.step >= last:
                break
    finally:
        training.Run = original
    return pd.DataFrame(rows)


def by_step_size(steps: pd.DataFrame, network: str = "actor") -> pd.DataFrame:
    """Per bin of ``network``'s step size: steps, the median errors, and the share where S + C is the closer."""
    valid = steps.dropna(subset=[f"{network}_error_plain", f"{network}_error_corrected"])
    valid = valid[valid[f"{network}_error_plain"] > 0]
    bins = pd.cut(valid[f"{network}_step"], BINS, right=False)
    grouped = valid.groupby(bins, observed=True)
    return pd.DataFrame(
        {
            "steps": grouped.size(),
            "median error S": grouped[f"{network}_error_plain"].median(),
            "median error S + C": grouped[f"{network}_error_corrected"].median(),
            "S + C closer": grouped.apply(
                lambda g: float((g[f"{network}_error_corrected"] < g[f"{network}_error_plain"]).mean()),
                include_groups=False,
            ),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="training steps (the window ends here)")
    parser.add_argument("--window", type=int, default=1100, help="steps measured, ending at --steps")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/taylor_steps"))
    args = parser.parse_args()
    config = TrainConfig(
        env="kmemory_chain",
        chain_length=4,
        agent="stream_ac",
        hidden_size=16,
        width=16,
        steps=args.steps,
        seed=args.seed,
        taylor_sensitivity=True,
        engine="eager",
        staleness_every=5,  # the measured run's setting (it keeps the episode's inputs for the replay)
        eval_episodes=0,
        progress_every=1,
    )
    steps = measure(config, max(args.steps - args.window, 1), args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    steps.to_csv(args.out / "steps.csv", index=False, float_format="%.6g")
    table = by_step_size(steps)
    print(f"actor, steps {int(steps.step.min())}-{int(steps.step.max())}, binned by ‖Δθ‖ of the step just taken:")
    print(table.to_string(float_format=lambda v: f"{v:.2f}"))
    worst = steps.loc[steps.actor_error_corrected.idxmax()]
    print(
        f"largest error of S + C: {worst.actor_error_corrected:.1f} at step {int(worst.step)} "
        f"(S: {worst.actor_error_plain:.2f}; the step before moved the actor's RTU by {worst.actor_step:.3f})"
    )
    print(f"rows: {args.out / 'steps.csv'}")


if __name__ == "__main__":
    main()
