"""Where populations train: local processes, or Ray tasks (on a local Ray or a cluster). A backend runs a list of
populations, handing each one's files to ``on_result`` and progress reports (agent-steps) to ``on_progress``."""

from __future__ import annotations

import os
import pickle
import signal
import time
import traceback
from multiprocessing.connection import wait

from ..config import ConfigError
from .packing import run_population


class LocalBackend:
    """Populations on local processes, at most ``workers`` at once: one process per population, forked from a fork
    server that has imported the training code once, reporting progress and its files through its own pipe.

    On Ctrl-C, SIGTERM (as ``sigterm_as_interrupt`` turns it into KeyboardInterrupt) or a failed population, the
    running populations are sent SIGTERM: each saves its checkpoint at its next step and ends. Files of a population
    that finishes meanwhile are still handed to ``on_result``. A process that has not ended ``stop_seconds`` later
    is killed. No worker pool, manager process or helper thread is involved, so nothing can hang on a lock that a
    signalled process held (a ``multiprocessing.Pool`` stopped mid-run by SIGTERM to its process group once hung).
    """

    def __init__(self, workers: int, stop_seconds: float = 120.0):
        self.workers, self.stop_seconds = workers, stop_seconds

    def run(self, populations, on_result, on_progress) -> None:
        import multiprocessing

        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["rtu_core.training", "rtu_core.sweep.packing"])
        else:
            context = multiprocessing.get_context("spawn")
        waiting, running = list(populations), {}
        try:
            while waiting or running:
                while waiting and len(running) < self.workers:
                    receiver, sender = context.Pipe(duplex=False)
                    process = context.Process(target=_report_population, args=(waiting.pop(0), sender), daemon=True)
                    process.start()
                    sender.close()
                    running[receiver] = process
                for receiver in wait(list(running)):
                    _receive(receiver, running, on_result, on_progress)
        except BaseException:
            self._stop(running, on_result)
            raise

    def _stop(self, running: dict, on_result) -> None:
        """Send SIGTERM to every running population and wait (``stop_seconds`` at most) for each to save its checkpoint
        and end, handing on the files of any that finishes meanwhile; kill what is left."""
        for process in running.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_seconds
        while running and time.monotonic() < deadline:
            for receiver in wait(list(running), timeout=max(deadline - time.monotonic(), 0)):
                try:
                    _receive(receiver, running, on_result, lambda agent_steps: None)
                except (Exception, KeyboardInterrupt):  # one stopped, or failed while stopping: the stop goes on
                    pass
        for process in running.values():
            process.kill()
            process.join()


def _report_population(population, sender) -> None:
    """A population's process: its progress reports ("progress", agent-steps), then ("files", {run: files}) or
    ("error", the exception, its traceback); the exception is sent as a RuntimeError with its text where it does
    not pickle. A population stopped by a signal ends with its checkpoint and sends nothing."""
    try:
        files = run_population(population, lambda agent_steps: sender.send(("progress", agent_steps)))
    except KeyboardInterrupt:
        raise SystemExit(128 + signal.SIGINT) from None
    except Exception as error:
        try:
            pickle.dumps(error)
        except Exception:
            error = RuntimeError(f"{type(error).__name__}: {error}")
        sender.send(("error", error, traceback.format_exc()))
        raise SystemExit(1) from None
    sender.send(("files", files))


def _receive(receiver, running: dict, on_result, on_progress) -> None:
    """Handle one message from a population's process; when it has ended (its pipe closed), join it. A population
    that failed raises its error here; one stopped by a signal (its checkpoint saved) raises KeyboardInterrupt, and
    one that ended otherwise with neither files nor an error (killed) raises PopulationStopped."""
    try:
        message = receiver.recv()
    except EOFError:
        process = running.pop(receiver)
        process.join()
        receiver.close()
        if process.exitcode in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # it saved its checkpoint on a signal
            raise KeyboardInterrupt  # the sweep stops as on Ctrl-C, whichever process the signal reached first
        raise PopulationStopped(f"a population's process ended (exit code {process.exitcode}) before it finished")
    if message[0] == "progress":
        on_progress(message[1])
    elif message[0] == "files":
        running.pop(receiver).join()
        receiver.close()
        on_result(message[1])
    else:  # the population's error, raised here with its process's traceback as a note
        running.pop(receiver).join()
        receiver.close()
        error, details = message[1], message[2]
        error.add_note(f"in the population's process:\n{details}")
        raise error


class PopulationStopped(RuntimeError):
    """A population's process ended without its files or an error, and not on a signal it could save for (killed)."""


class RayBackend:
    """Populations as Ray tasks (one CPU each): a local Ray, or ``address`` to join an existing cluster."""

    def __init__(self, workers: int, address: str | None = None):
        self.workers, self.address = workers, address

    def run(self, populations, on_result, on_progress) -> None:
        try:
            import ray
            from ray.util.queue import Empty, Queue
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install 'rtu-lab[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address, log_to_driver=False, logging_level="warning")
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False, logging_level="warning")
        pending = []
        try:
            progress = Queue()
            task = ray.remote(num_cpus=1)(_ray_population)
            pending = [task.remote(population, progress) for population in populations]
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                _drain(progress, on_progress, Empty)
                for ref in done:
                    on_result(ray.get(ref))
            _drain(progress, on_progress, Empty)
        finally:
            for ref in pending:  # after Ctrl-C or a failed task
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


def _ray_population(population, progress_queue) -> dict:
    return run_population(population, progress_queue.put)


def _drain(progress, on_progress, empty: type[Exception]) -> None:
    """Hand every progress report waiting in ``progress`` to ``on_progress``."""
    while True:
        try:
            on_progress(progress.get_nowait())
        except empty:
            return
