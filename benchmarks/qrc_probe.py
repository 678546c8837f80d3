"""What QRC(λ)'s two networks do while it trains: per window of steps, member 0's mean training return, mean
Q(o_t, a_t), mean signed TD error δ_t and mean |h(o_t, a_t)|.

    python benchmarks/qrc_probe.py --env popgym:HigherLowerEasy --hidden-size 32 --steps 350000 --window 25000
    python benchmarks/qrc_probe.py --env popgym:HigherLowerEasy --hidden-size 32 --steps 350000 --window 25000 \\
        --no-gradient-correction

Q's step moves Q(o, a) towards its target when δ has a steady sign (δ > 0 on average: Q below its targets, so Q
should rise); a Q that falls while the mean δ stays positive is being moved by the correction terms, not by δ
(docs/method.md §4). The run is ``train(TrainConfig(...))`` with the task's presets and the QRC agent replaced by a
subclass of the class its engine computes with (``agents.agent_class``) that records what ``act`` and ``learn``
return.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from rtu_core import TrainConfig, train, training
from rtu_core.agents import QRC, agent_class
from rtu_core.config import ConfigError
from rtu_core.engines import choose
from rtu_core.events import EpisodeEnd


class Recording:
    """Mixed into a QRC(λ) class (``recording``): keeps member 0's Q(o_t, a_t), h(o_t, a_t) and δ_t of every learning
    step."""

    built: list[Recording] = []  # the agents made, in order

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.q_taken, self.h_taken, self.td_errors = [], [], []
        Recording.built.append(self)

    def act(self, obs, greedy: bool = False, learn: bool = True):
        step = super().act(obs, greedy, learn)
        if learn:
            self.q_taken.append(float(step.q[0]))
            self.h_taken.append(float(step.h[0]))
        return step

    def learn(self, step, reward, next_obs, terminated, done):
        td_error = super().learn(step, reward, next_obs, terminated, done)
        self.td_errors.append(float(td_error[0]))
        return td_error


def recording(config: TrainConfig) -> type:
    """The QRC(λ) class a run of ``config`` computes with, recording."""
    base = agent_class(QRC, choose(config).step)
    return type(f"Recording{base.__name__}", (Recording, base), {})


def probe(config: TrainConfig, window: int) -> list[dict]:
    """One row per window: its end step, mean return of the episodes ending in it, mean Q, mean δ, mean |h|."""
    returns: list[tuple[int, float]] = []
    saved, Recording.built = training.LEARNERS["qrc"], []
    training.LEARNERS["qrc"] = recording(config)
    try:
        for event in train(config):
            if isinstance(event, EpisodeEnd) and event.member == 0:
                returns.append((event.step, event.episode_return))
    finally:
        training.LEARNERS["qrc"] = saved
    agent = Recording.built[0]
    rows = []
    for end in range(window, config.steps + 1, window):
        part = slice(end - window, end)
        episode_returns = [r for s, r in returns if end - window < s <= end]
        rows.append(
            {
                "step": end,
                "return": float(np.mean(episode_returns)) if episode_returns else float("nan"),
                "Q": float(np.mean(agent.q_taken[part])),
                "delta": float(np.mean(agent.td_errors[part])),
                "|h|": float(np.mean(np.abs(agent.h_taken[part]))),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="popgym:HigherLowerEasy")
    parser.add_argument("--hidden-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=350_000)
    parser.add_argument("--window", type=int, default=25_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-gradient-correction", action="store_true")
    args = parser.parse_args()
    try:
        if not 0 < args.window <= args.steps:
            raise ConfigError(f"--window must be in (0, --steps], got {args.window}")
        config = TrainConfig(
            env=args.env,
            agent="qrc",
            hidden_size=args.hidden_size,
            steps=args.steps,
            seed=args.seed,
            eval_episodes=0,
            no_gradient_correction=args.no_gradient_correction,
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"QRC(λ), {config.env}, hidden {config.hidden_size}, seed {config.seed}, correction "
        f"{'off' if config.no_gradient_correction else 'on'}: member 0 per {args.window:,} steps"
    )
    print("| step | return | mean Q(o, a) | mean δ | mean abs h(o, a) |\n|---|---|---|---|---|")
    for row in probe(config, args.window):
        print(f"| {row['step']:,} | {row['return']:.2f} | {row['Q']:.3f} | {row['delta']:+.3f} | {row['|h|']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
