"""A class on one server: the teacher's limits (``panel serve app.py --args --max-runs N …``) and the line of runs
waiting for a training process.

Every browser session of one server shares this module (the server imports it once; ``app.py`` itself runs afresh
per session), so ``SLOTS`` counts the training processes of the whole class.
"""

from __future__ import annotations

import argparse
import os
import threading
from dataclasses import dataclass


@dataclass
class Limits:
    """What a teacher allows each student's run (None: no limit beyond the settings' own bounds)."""

    max_runs: int = os.cpu_count() or 1  # training processes at once, across every session of the server
    max_steps: int | None = None  # the step budget's upper bound
    max_hidden: int | None = None  # the upper bound of hidden units and feature width
    max_minutes: float | None = None  # each run's wall-clock limit


def parse(argv: list[str]) -> Limits:
    """The limits given after ``--args``; a bad value raises a one-line ValueError."""
    parser = argparse.ArgumentParser(prog="panel serve app.py --args", exit_on_error=False, add_help=False)
    parser.add_argument("--max-runs", type=int, default=Limits.max_runs)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--max-hidden", type=int)
    parser.add_argument("--max-minutes", type=float)
    try:
        args, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError as error:
        raise ValueError(f"panel serve app.py --args: {error}") from None
    if unknown:
        raise ValueError(f"panel serve app.py --args: unknown {' '.join(unknown)} (--max-runs, --max-steps, "
                         "--max-hidden, --max-minutes)")  # fmt: skip
    for name in ("max_runs", "max_steps", "max_hidden", "max_minutes"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"panel serve app.py --args: --{name.replace('_', '-')} must be positive, not {value}")
    return Limits(**vars(args))


class RunSlots:
    """At most ``limit`` training processes at once; a run beyond that waits in line, first come first served."""

    def __init__(self, limit: int):
        self.limit = limit
        self._condition = threading.Condition()
        self._running = 0
        self._line: list[object] = []

    def wait(self, ticket: object, cancelled: threading.Event, tell_place) -> bool:
        """Block until ``ticket`` may start a training process (True) or ``cancelled`` is set (False); while it
        waits, ``tell_place(k)`` is called whenever its place in line k (1: next) changes."""
        with self._condition:
            self._line.append(ticket)
            told = None
            try:
                while not cancelled.is_set():
                    place = self._line.index(ticket) + 1
                    if place == 1 and self._running < self.limit:
                        self._running += 1
                        return True
                    if place != told:
                        tell_place(place)
                        told = place
                    self._condition.wait(0.2)
                return False
            finally:
                self._line.remove(ticket)
                self._condition.notify_all()

    def release(self) -> None:
        """A training process has ended: the next in line may start."""
        with self._condition:
            self._running -= 1
            self._condition.notify_all()

    @property
    def waiting(self) -> int:
        return len(self._line)


LIMITS = Limits()
SLOTS = RunSlots(LIMITS.max_runs)


def configure(argv: list[str]) -> None:
    """Set this server's limits from ``panel serve app.py --args …`` (each session's ``app.py`` calls it; the limits
    are the same every time)."""
    global LIMITS
    limits = parse(argv)
    if limits != LIMITS:
        LIMITS = limits
        SLOTS.limit = limits.max_runs
