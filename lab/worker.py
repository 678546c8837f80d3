"""The lab's training process: runs ``rtu_core.train`` for one or more populations and sends the events home.

Training runs in its own process (not a thread of the server) because the Bokeh server's document
bookkeeping holds the GIL for most of every plot update: a training thread beside it runs at a fraction of its
headless speed. In a process of its own it keeps its own interpreter and core.

This module imports no Panel/Bokeh, so the fork server preloads only torch and ``rtu_core``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Callable, Iterator, Sequence

from rtu_core import RunEnd, TrainConfig, engines, train
from rtu_core.engines import native

Job = TrainConfig | Sequence[TrainConfig]
# Trainings run at the lowest priority: the server (one thread, handling every click and plot update of the class)
# stays responsive however many trainings share its cores.
NICENESS = 19
END = -1  # the job number of the worker's own messages (its final RunEnd, a Failure)


class Failure:
    """An exception inside training, as a message from the training process."""

    def __init__(self, message: str):
        self.message = message


class Held:
    """The training process holds (paused) after the step it has just reported: every event before this one is
    in, so the page's step count is final when it says paused."""


class Notice:
    """What the training process is doing before its first step (building the native step), for the status line."""

    def __init__(self, message: str):
        self.message = message


class PauseControl:
    """Pause, Resume and single Steps of a training process, set from the server: while ``paused`` (an Event) is
    set the run holds after its current step; each release of ``steps`` (a Semaphore) lets one more step through,
    and that step is reported at once (``rtu_core.train``'s ``hold``)."""

    def __init__(self, context):
        self.paused = context.Event()
        self.steps = context.Semaphore(0)
        self._granted = False  # in the training process: the step under way was one single Step
        self._holding = False  # in the training process: the step where the run holds has been reported
        self._announced = False  # in the training process: this hold has been told to the server (``began_holding``)

    def hold(self, stop: Callable[[], bool]) -> bool:
        """Called by the training process after each step: True to report this step now (the step where a pause
        takes hold, or a single Step just taken); else hold while paused (until Resume, a Step or ``stop()``) and go
        on (False)."""
        if self._granted or (self.paused.is_set() and not self._holding):
            self._granted, self._holding = False, True
            return True
        while self.paused.is_set() and not stop():
            if self.steps.acquire(timeout=0.05):
                self._granted = True
                return False
        self._holding = False
        return False

    def began_holding(self) -> bool:
        """In the training process, after each event sent: True once per pause, when the run has begun to hold."""
        if not self._holding:
            self._announced = False
            return False
        first, self._announced = not self._announced, True
        return first

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_granted": False, "_holding": False, "_announced": False}


def members(jobs: list[Job]) -> list[TrainConfig]:
    return [config for job in jobs for config in ([job] if isinstance(job, TrainConfig) else job)]


def prepare_native(jobs: list[Job], send: Callable[[tuple[int, object]], None]) -> None:
    """Load the native step before training where a job uses it, saying first when that means building it (about a
    minute, once) or that it cannot be built (the PyTorch step runs, slower)."""
    if not any(engines.preferred(config).step == "native" for config in members(jobs)):
        return
    if not native.ready():
        send((END, Notice("building the native step, once, about a minute…")))
    if not native.available():
        send((END, Notice("the native step could not be built: the slower PyTorch step runs")))


def interleave(streams: list[Iterator]) -> Iterator[tuple[int, object]]:
    """Round-robin over several event streams: one process advances every population in turn."""
    active = list(range(len(streams)))
    while active:
        for job in list(active):
            try:
                yield job, next(streams[job])
            except StopIteration:
                active.remove(job)


def produce(
    jobs: list[Job],
    send: Callable[[tuple[int, object]], None],
    stop: Callable[[], bool],
    train_fn: Callable = train,
    hold: Callable[[], bool] | None = None,
    began_holding: Callable[[], bool] | None = None,
) -> None:
    """Train ``jobs`` interleaved, sending ``(job, event)`` pairs and finally ``(END, RunEnd(overall status))``.

    ``stop()`` is polled between events, ``hold()`` after every step (``PauseControl.hold``); a diverged member or an
    exception also sends ``(END, Failure)`` (an exception ends the run: its final status is 'error').
    """
    streams = [train_fn(job, hold=hold) for job in jobs]
    statuses, started = ["completed"] * len(jobs), time.perf_counter()
    messages = [""] * len(jobs)
    try:
        for job, event in interleave(streams):
            if stop():
                send((END, RunEnd("stopped", 0, time.perf_counter() - started, "stopped by the user")))
                return
            send((job, event))
            if began_holding is not None and began_holding():
                send((END, Held()))
            if isinstance(event, RunEnd):
                statuses[job], messages[job] = event.status, event.message
                if event.status == "diverged":
                    send((END, Failure(event.message)))
        final = next((job for job, s in enumerate(statuses) if s != "completed"), None)
        status, message = ("completed", "") if final is None else (statuses[final], messages[final])
        send((END, RunEnd(status, 0, time.perf_counter() - started, message)))
    except Exception as error:  # surfaced as a notification; the app keeps working
        message = f"{type(error).__name__}: {error}"
        send((END, Failure(message)))
        send((END, RunEnd("error", 0, time.perf_counter() - started, message)))
    finally:
        for stream in streams:
            stream.close()


def run_in_process(
    jobs: list[Job], connection: Connection, stop_event, control: PauseControl, train_fn: Callable = train
) -> None:
    """Entry point of the training process: ``produce`` over a pipe, stopping when ``stop_event`` is set, holding
    while ``control`` says paused."""
    os.nice(NICENESS)
    try:
        if train_fn is train:
            prepare_native(jobs, connection.send)

        def hold() -> bool:
            return control.hold(stop_event.is_set)

        produce(jobs, connection.send, stop_event.is_set, train_fn, hold, control.began_holding)
    except (BrokenPipeError, EOFError):  # the server went away first: nothing left to tell
        pass
    finally:
        connection.close()


def process_context() -> multiprocessing.context.BaseContext:
    """A fork server that has already imported torch and ``rtu_core``: a new training process starts fast.

    Forking the Bokeh server itself would copy its threads and locks; the fork server is a clean
    single-threaded parent. It also preloads ``torch._dynamo``, which ``torch.optim`` imports at its first step
    (seconds of a cold start), and the server's main script where there is one (``panel serve app.py`` run as the
    ``panel`` script): imported once there, it is not re-imported by every training process (multiprocessing's
    rule for a main script; ``python -m panel serve``, what ``make lab`` runs, has none). Where fork servers do not
    exist (Windows), plain spawn.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__, "torch._dynamo"])
    return context


# Loaded once here, where it needs no build: the fork server imports this module, so every training process it
# forks has the native step already and takes no build lock.
if native.ready():
    native.available()


def start_process_server() -> None:
    """Start the fork server now, while the page loads, so that the first Start does not wait the seconds it takes
    to import torch and ``rtu_core`` (it imports them in its own process; this returns at once)."""
    if process_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
