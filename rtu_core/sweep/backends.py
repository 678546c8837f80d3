"""Where populations train: local processes, or Ray tasks (on a local Ray or a cluster). A backend runs a list of
populations, handing each one's files to ``on_result`` and progress reports (agent-steps) to ``on_progress``."""

from __future__ import annotations

import queue

from ..config import ConfigError
from .packing import run_population


class LocalBackend:
    """Populations on ``workers`` local processes (a fork server: no re-import per task)."""

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, populations, on_result, on_progress) -> None:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with context.Manager() as manager:
            progress = manager.Queue()
            pool = context.Pool(self.workers)
            try:
                pending = [pool.apply_async(run_population, (population, progress.put)) for population in populations]
                while pending:
                    pending[0].wait(0.5)
                    _drain(progress, on_progress, queue.Empty)
                    for result in [r for r in pending if r.ready()]:
                        pending.remove(result)
                        on_result(result.get())
                _drain(progress, on_progress, queue.Empty)
                pool.close()
            except BaseException:  # Ctrl-C or a failed population: stop the others now
                pool.terminate()
                raise
            finally:
                pool.join()


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
