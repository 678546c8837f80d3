"""Stopping a training run cleanly on a signal: at the next step boundary, with its checkpoint, not mid-step.

The headless commands (``python -m rtu_core train``, the sweep workers) train under ``stop_on_signals``. Ctrl-C
(SIGINT) and SIGTERM (a scheduler's or ``kill``'s stop) are recorded instead of ending the process, and the
training loop, asked through ``train(stop=...)`` after every step, ends the run there: a checkpoint is saved
first when the run keeps one. A Ctrl-C after an earlier signal raises KeyboardInterrupt at once, for a user who
will not wait for the step to end. A process that only waits for training processes (a sweep's) takes SIGTERM as
Ctrl-C instead (``sigterm_as_interrupt``), so that it ends as a Ctrl-C ends it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def stop_on_signals(enabled: bool = True) -> Iterator[list[int]]:
    """Yield the list of signals received (SIGINT, SIGTERM) while the block runs; the first one only asks for a
    stop, a later Ctrl-C raises KeyboardInterrupt. Only in the main thread (where Python delivers signals), and not
    for a signal the process ignores (SIGINT in a background job started with ``nohup … &``). The previous
    handlers come back when the block ends."""
    received: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM (a scheduler's stop) raises KeyboardInterrupt, as Ctrl-C does; the previous
    handler comes back when the block ends."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
