"""The lab's training session: one background worker per browser session (Panel's manual threading).

The worker thread starts a training process (``lab.worker``) that runs ``rtu_core.train`` for one or more
populations ("jobs"), interleaved, and relays its ``(job, event)`` pairs from the pipe onto a queue. The
UI thread calls ``drain()`` from its periodic callback: it updates this object's read-only params and hands
the events to the plots. Bokeh and HoloViews objects are never touched from the worker.

Every run has its own queue and stop flag. Stop freezes the page at once (``drain`` hands out nothing but the
run's end marker from then on) while the process winds down; Reset lets go of the run altogether, so the page
is idle at once and a new run can start while the old process is still ending.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from typing import Callable

import numpy as np
import panel as pn
import param

from rtu_core import EpisodeEnd, Progress, RunEnd, TrainConfig, train

from . import classroom
from .worker import END, Failure, Held, Job, Notice, PauseControl, process_context, run_in_process

RECENT = 50  # episodes behind the status line's success rate and return
GRACE_S = 2.0  # how long a stopped training process may take to say goodbye before it is terminated


def queued_message(place: int) -> str:
    runs = classroom.LIMITS.max_runs
    return f"place {place} in line: this server trains {runs} run{'s' if runs > 1 else ''} at a time"


def notify(message: str, level: str = "error") -> None:
    """Show a notification on the page (when the page has notifications enabled): ``level`` error or warning."""
    if pn.state.notifications is not None:
        getattr(pn.state.notifications, level)(message, duration=8000)


class Queued:
    """The run waits for a training process (``classroom.SLOTS``): its place in line (1: next)."""

    def __init__(self, place: int):
        self.place = place


class Started:
    """The run's training process has started."""


def time_limited(job: Job) -> Job:
    """``job`` under the teacher's run-time limit (``--max-minutes``), where one is set."""
    minutes = classroom.LIMITS.max_minutes
    if minutes is None:
        return job
    limit = minutes * 60.0

    def limited(config: TrainConfig) -> TrainConfig:
        return dataclasses.replace(config, time_limit=min(config.time_limit or limit, limit))

    return limited(job) if isinstance(job, TrainConfig) else [limited(c) for c in job]


class TrainingSession(pn.viewable.Viewer):
    """One browser session's training: a process running ``train()``, its events relayed to the page."""

    status = param.Selector(
        default="idle",
        objects=["idle", "queued", "running", "pausing", "paused"]
        + ["stopping", "stopped", "completed", "timeout", "error"],
        constant=True,
        doc="What the worker is doing",
    )
    step = param.Integer(default=0, constant=True, doc="Environment steps of each member so far")
    episodes = param.Integer(default=0, constant=True, doc="Episodes finished (all members)")
    steps_per_second = param.Number(default=0.0, constant=True, doc="Agent-steps per second (all members)")
    member_steps_per_second = param.Number(default=0.0, constant=True, doc="Steps per second of each member")
    total_steps = param.Integer(default=0, constant=True, doc="Steps each member trains for (the longest job's)")
    recent_success = param.Number(default=None, allow_None=True, constant=True)
    recent_return = param.Number(default=None, allow_None=True, constant=True)
    message = param.String(default="", constant=True, doc="The last error or stop reason")

    def __init__(self, train_fn: Callable = train, **params):
        """``train_fn(job)`` yields the events of one job in the training process (``rtu_core.train``)."""
        super().__init__(**params)
        self._train_fn = train_fn
        self._queue: queue.Queue = queue.Queue()  # the current run's events
        self._stop = threading.Event()  # the current run's stop flag
        self._thread: threading.Thread | None = None
        self._recent: list[tuple[float, bool | None]] = []
        self._populations: list[int] = []
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(self._on_session_destroyed)

    def _on_session_destroyed(self, session_context) -> None:
        """The browser tab went away: stop its training thread."""
        self.stop(wait=True)

    # -- control (UI thread) ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, jobs: Job | list[Job]) -> None:
        """Start training ``jobs`` (a config, a list of member configs, or a list of those) in the background."""
        if self.running:
            raise RuntimeError("a run is in progress; stop it first")
        if isinstance(jobs, TrainConfig) or (jobs and isinstance(jobs[0], TrainConfig)):
            jobs = [jobs]
        jobs = [time_limited(job) for job in jobs]
        self._queue, self._stop = queue.Queue(), threading.Event()
        self._control = PauseControl(process_context())
        self._recent = []
        self._populations = [j.population if isinstance(j, TrainConfig) else len(j) for j in jobs]
        self._set(
            status="running",
            total_steps=max((j if isinstance(j, TrainConfig) else j[0]).steps for j in jobs),
            member_steps_per_second=0.0,
            step=0,
            episodes=0,
            steps_per_second=0.0,
            recent_success=None,
            recent_return=None,
            message="",
        )
        self._thread = threading.Thread(
            target=self._work,
            args=(list(jobs), self._queue, self._stop, self._control),
            daemon=True,
            name="rtu-lab-training",
        )
        self._thread.start()

    def pause(self) -> None:
        """Hold the training process after its current step (nothing restarts: ``resume`` goes on from there)."""
        if self.running and self.status == "running":
            self._control.paused.set()
            self._set(status="pausing")  # "paused" when the process says it holds (``Held``), its last step in

    def resume(self) -> None:
        """Go on with the paused run."""
        if self.running and self.status in ("pausing", "paused"):
            while self._control.steps.acquire(False):  # single steps asked for and not yet taken: dropped
                pass
            self._control.paused.clear()
            self._set(status="running")

    def step_once(self) -> None:
        """While paused: let the run take one more environment step, reported at once."""
        if self.running and self.status in ("pausing", "paused"):
            self._control.steps.release()

    def stop(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Stop the run: the page stops changing now; the process ends after the step in progress (or is
        terminated after ``GRACE_S``). Optionally wait for it."""
        if self.running:
            self._stop.set()
            if self.status in ("running", "pausing", "paused", "queued"):
                self._set(status="stopping")
            if wait:
                self._thread.join(timeout)

    def reset(self) -> None:
        """Let go of the run (its process is stopped in the background) and forget everything: idle at once."""
        self._stop.set()
        self._thread = None
        self._queue = queue.Queue()
        self._recent = []
        self._set(
            status="idle", step=0, episodes=0, steps_per_second=0.0, recent_success=None, recent_return=None, message=""
        )

    def drain(self, limit: int = 100_000) -> list[tuple[int, object]]:
        """Take the events the worker produced since the last call and update the params (UI thread)."""
        items = []
        try:
            while len(items) < limit:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        if self._stop.is_set():  # stopped: the page stands still; only the end of the run is news
            items = [(job, event) for job, event in items if job == END]
        updates: dict = {}
        for job, event in items:
            if isinstance(event, EpisodeEnd):
                self._recent.append((event.episode_return, event.success))
                updates["episodes"] = updates.get("episodes", self.episodes) + 1
            elif isinstance(event, Progress) and job == 0:
                if updates.get("message", self.message).startswith("building"):  # built: training has begun
                    updates["message"] = ""
                updates["step"] = event.step
                updates["steps_per_second"] = event.steps_per_second * sum(self._populations)
                updates["member_steps_per_second"] = event.steps_per_second
            elif isinstance(event, Failure):
                updates.update(status="error", message=event.message)
            elif isinstance(event, Held) and updates.get("status", self.status) == "pausing":
                updates["status"] = "paused"
            elif isinstance(event, Notice):
                updates["message"] = event.message
            elif isinstance(event, Queued) and updates.get("status", self.status) in ("running", "queued"):
                updates.update(status="queued", message=queued_message(event.place))
            elif isinstance(event, Started) and updates.get("status", self.status) == "queued":
                updates.update(status="running", message="")
            elif isinstance(event, RunEnd) and job == END:  # the worker's own end marker
                if updates.get("status", self.status) != "error":
                    updates["status"] = event.status
                    updates["message"] = event.message
        if self._recent:
            self._recent = self._recent[-RECENT:]
            returns = [r for r, _ in self._recent]
            successes = [s for _, s in self._recent if s is not None]
            updates["recent_return"] = float(np.mean(returns))
            updates["recent_success"] = float(np.mean(successes)) if successes else None
        if updates:
            self._set(**updates)
        return [(job, event) for job, event in items if job >= 0]

    # -- worker thread ----------------------------------------------------------------------------------
    def _work(self, jobs: list[Job], events: queue.Queue, stop: threading.Event, control: PauseControl) -> None:
        """Start the training process, relay its events onto ``events`` until its end marker; once ``stop`` is
        set, ask it to stop."""
        ticket = object()
        if not classroom.SLOTS.wait(ticket, stop, lambda place: events.put((END, Queued(place)))):
            events.put((END, RunEnd("stopped", 0, 0.0, "stopped while queued")))
            return
        try:
            events.put((END, Started()))
            self._run_process(jobs, events, stop, control)
        finally:
            classroom.SLOTS.release()

    def _run_process(self, jobs: list[Job], events: queue.Queue, stop: threading.Event, control: PauseControl) -> None:
        context = process_context()
        receiver, sender = context.Pipe(duplex=False)
        stop_event = context.Event()
        process = context.Process(
            target=run_in_process,
            args=(jobs, sender, stop_event, control, self._train_fn),
            daemon=True,
            name="rtu-lab-training",
        )
        process.start()
        sender.close()  # the child holds the only writing end: its exit closes the pipe
        try:
            self._relay(receiver, stop_event, process, events, stop)
        finally:
            receiver.close()
            process.join(GRACE_S)
            if process.is_alive():
                process.terminate()
                process.join()

    @staticmethod
    def _relay(receiver, stop_event, process, events: queue.Queue, stop: threading.Event) -> None:
        stopping_since = None
        while True:
            if stop.is_set() and stopping_since is None:
                stop_event.set()
                stopping_since = time.monotonic()
            if stopping_since is not None and time.monotonic() - stopping_since > GRACE_S:
                process.terminate()  # still starting, or deep in a step: nothing of it needs keeping
                events.put((END, RunEnd("stopped", 0, 0.0, "stopped by the user")))
                return
            if not receiver.poll(0.05):
                continue
            try:
                job, event = receiver.recv()
            except EOFError:  # the process died without its end marker
                process.join(GRACE_S)
                events.put((END, Failure(f"the training process exited unexpectedly (code {process.exitcode})")))
                return
            events.put((job, event))
            if job == END and isinstance(event, RunEnd):
                return

    def _set(self, **values) -> None:
        with param.edit_constant(self):
            self.param.update(**values)

    def __panel__(self):
        return pn.pane.Markdown(self.param.status)
