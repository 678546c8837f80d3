"""A class on one server: K students' pages in headless Chromium on 127.0.0.1, all pressing Start, then Stop, then
closing their tabs. Measures what each student meets:

- page ready: from asking for the page to its Start button being there (all K pages asked for at once);
- first step: from the click on Start to the status line's first step (pages beyond ``--max-runs`` wait in line:
  their first step comes when a run ahead of them ends, so this is reported for the runs that started);
- steps/s per student: the status lines' step counts over ``--train-seconds`` of training (a queued page: 0);
- Stop: from the click on Stop to the page standing still (the status says stopping or stopped) on every page;
- processes left: the lab's training processes still alive 10 s after every tab closed (should be 0);
- cores busy while training: the Chromium pages, the server and the training processes, in cores, over
  ``--train-seconds`` (the Playwright driver polling the pages is not counted);
- CPU per page load: the CPU-seconds the Chromium pages and the server spent from asking for the pages to the last
  one ready, per page. K times it, over the machine's cores, is the least time a class of K can take to a ready
  page here, however the work is scheduled.

The browsers run on the same machine as the server and the trainings, so on a 2-core machine these are an upper
bound on what a class with its own computers meets. Loopback only; every loop is bounded in count and time.

    python -m benchmarks.classroom --pages 1 5 10 20 --train-seconds 20   (from the repository root)
"""

from __future__ import annotations

import argparse
import statistics
import time

import tests.browser as browser_tools
from tests.browser import CHROMIUM, FLAGS, LOAD_TIMEOUT_MS, STATUS, served_app, status_step, training_processes

POLL_S = 0.1


def cpu_seconds(process) -> float:
    """User and system CPU time of ``process`` and every process below it (those that ended are not counted)."""
    import psutil

    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def status(page) -> str:
    try:
        return page.get_by_text(STATUS).inner_text(timeout=2_000)
    except Exception:  # a page too busy to answer in time reads as unchanged
        return ""


def class_of(k: int, max_runs: int | None, train_seconds: float) -> dict:
    """One class of ``k`` pages on a fresh server; returns the measurements."""
    from playwright.sync_api import sync_playwright

    args = ["--max-runs", str(max_runs)] if max_runs else []
    with served_app(args=args) as url, sync_playwright() as p:
        import psutil

        server_pid = browser_tools.server_pid(url)
        server = psutil.Process(server_pid)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        chromium = next(c for c in psutil.Process().children(recursive=True) if "chrom" in c.name())

        def usage() -> tuple[float, float, float]:
            """CPU-seconds so far of the Chromium pages, the server itself and the training processes."""
            trainings = sum(cpu_seconds(p) for p in training_processes(server_pid))
            return cpu_seconds(chromium), server.cpu_times().user + server.cpu_times().system, trainings

        pages = [browser.new_context(viewport={"width": 1280, "height": 900}).new_page() for _ in range(k)]
        cpu_before = usage()
        asked = time.perf_counter()
        for page in pages:  # every page asked for at once
            page.goto(url, wait_until="commit", timeout=LOAD_TIMEOUT_MS)
        ready = [None] * k
        deadline = asked + LOAD_TIMEOUT_MS / 1000
        while None in ready and time.perf_counter() < deadline:
            for i, page in enumerate(pages):
                if ready[i] is None and page.get_by_role("button", name="Start", exact=True).count():
                    ready[i] = time.perf_counter() - asked
            time.sleep(POLL_S)
        load_cpu = [after - before for after, before in zip(usage(), cpu_before)]
        clicked = []
        for page in pages:
            page.get_by_role("button", name="Start", exact=True).click(timeout=LOAD_TIMEOUT_MS)
            clicked.append(time.perf_counter())
        first = [None] * k
        deadline = time.perf_counter() + max(60.0, train_seconds)
        while None in first and time.perf_counter() < deadline:
            for i, page in enumerate(pages):
                if first[i] is None and "running" in status(page) and status_step(page) > 0:
                    first[i] = time.perf_counter() - clicked[i]
            if sum(f is not None for f in first) >= min(k, max_runs or k):
                break
            time.sleep(POLL_S)
        steps_before = [status_step(page) for page in pages]
        cpu_before = usage()
        time.sleep(train_seconds)
        busy = [(after - before) / train_seconds for after, before in zip(usage(), cpu_before)]
        rates = [(status_step(page) - s) / train_seconds for page, s in zip(pages, steps_before)]
        queued = sum("queued" in status(page) for page in pages)
        stops = []
        for page in pages:
            page.get_by_role("button", name="Stop", exact=True).click(timeout=LOAD_TIMEOUT_MS)
            started = time.perf_counter()
            while time.perf_counter() - started < 60 and not any(w in status(page) for w in ("stopping", "stopped")):
                time.sleep(POLL_S)
            stops.append(time.perf_counter() - started)
        browser.close()
        closed = time.perf_counter()
        while training_processes(server_pid) and time.perf_counter() - closed < 30:
            time.sleep(0.5)
        time.sleep(max(0.0, 10 - (time.perf_counter() - closed)))
        left = len(training_processes(server_pid))
    return dict(k=k, ready=ready, first=[f for f in first if f is not None], rates=rates, queued=queued,
                stops=stops, left=left, load_cpu=load_cpu, busy=busy)  # fmt: skip


def spread(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{min(values):.1f}-{max(values):.1f} (median {statistics.median(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 5, 10, 20], help="class sizes K to try")
    parser.add_argument("--max-runs", type=int, default=None, help="the server's cap (default: its own, the cores)")
    parser.add_argument("--train-seconds", type=float, default=20.0, help="training time before Stop")
    args = parser.parse_args()
    print("| K | page ready, s | first step, s (runs started) | steps/s per student | queued | Stop, s | "
          "processes left | cores busy while training (Chromium, server, trainings) | "
          "CPU per page load, s (Chromium + server) |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for k in args.pages:
        r = class_of(k, args.max_runs, args.train_seconds)
        rates = [v for v in r["rates"] if v > 0]
        browser, server = r["load_cpu"][:2]
        print(f"| {k} | {spread(r['ready'])} | {spread(r['first'])} ({len(r['first'])}) | "
              f"{spread(rates) if rates else '0'} | {r['queued']} | {spread(r['stops'])} | {r['left']} | "
              f"{r['busy'][0]:.2f}, {r['busy'][1]:.2f}, {r['busy'][2]:.2f} | "
              f"{(browser + server) / k:.2f} ({browser / k:.2f} + {server / k:.2f}) |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
