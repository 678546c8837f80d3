"""Training speed inside the lab vs headless ``train()``, measured in one run, the plots' update rate, and what a
page costs a class on one server (building a student's page; the wait from Start to the first step shown).

Three ways of running the same config (the app's defaults, MemoryChain, Stream AC, RTU-RTRL):
- headless: ``train(config)`` consumed in a plain loop;
- session: a ``LabApp`` without a server, its ``TrainingSession`` training while this script plays the UI
  thread, calling ``app.refresh()`` every REFRESH_MS (draining events into the real plot components);
- served: ``python -m panel serve app.py`` with headless Chromium connected (Playwright), Start pressed;
  the speed is read off the page's status line (steps shown, over wall time) and the update rate is how
  often the page's plot data changed, and the Start latency is the time from the click (the page's first Start
  after the server started) to the status line's first step.
A page's build is timed in this process: the Bokeh document of a fresh ``LabApp``'s page, as ``panel serve`` builds
it for each browser that connects.

    python -m benchmarks.lab_overhead --steps 6000 --repeats 2 --served-seconds 40   (from the repository root)
"""

from __future__ import annotations

import argparse
import time

import panel as pn
from bokeh.document import Document

from lab.app import REFRESH_MS, SNAPSHOT_EVERY, LabApp
from rtu_core import train
from tests.browser import PLOT_ROWS, chromium_page, served_app, status_step


def headless(config) -> float:
    started = time.perf_counter()
    for _ in train(config):
        pass
    return config.steps / (time.perf_counter() - started)


def in_lab(app: LabApp, config) -> tuple[float, float, float]:
    """(steps/s on the training process's clock, as the status line shows it; plot refreshes/s that
    delivered data; mean ms per refresh). The training process starts in ~0.1 s from the warm fork server."""
    app.clear_plots()
    app.session.start(config)
    started, refreshes, busy = time.perf_counter(), 0, 0.0
    while app.session.running:
        time.sleep(REFRESH_MS / 1000)
        t0 = time.perf_counter()
        rows = len(app.curves.buffer.data)
        app.refresh()
        busy += time.perf_counter() - t0
        refreshes += len(app.curves.buffer.data) != rows
    elapsed = time.perf_counter() - started
    app.refresh()
    return app.session.steps_per_second, refreshes / elapsed, 1000 * busy / max(refreshes, 1)


def page_build_seconds(repeats: int) -> list[float]:
    """Seconds to build one student's page (the Bokeh document of a fresh app), ``repeats`` times."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        LabApp().template().server_doc(Document())
        times.append(time.perf_counter() - started)
    return times


def served(seconds: float) -> tuple[float, float, float]:
    """(steps/s the page's status line shows over ``seconds``, plot data changes per second on the page, seconds
    from the first Start's click to the first step shown)."""
    with served_app() as url, chromium_page(url) as page:
        page.get_by_role("button", name="Start", exact=True).click()
        clicked = time.perf_counter()
        while status_step(page) == 0:
            time.sleep(0.05)
        latency = time.perf_counter() - clicked
        while status_step(page) < 100:  # past the training process's start
            time.sleep(0.2)
        started, first_step, changes, rows = time.perf_counter(), status_step(page), 0, page.evaluate(PLOT_ROWS)
        while time.perf_counter() - started < seconds:
            time.sleep(0.1)
            now_rows = page.evaluate(PLOT_ROWS)
            changes += now_rows != rows
            rows = now_rows
        elapsed = time.perf_counter() - started
        steps = status_step(page) - first_step
        page.get_by_role("button", name="Stop", exact=True).click()
    return steps / elapsed, changes / elapsed, latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--chain-length", type=int, default=8, help="the served app runs its default, 8")
    parser.add_argument("--served-seconds", type=float, default=40.0, help="0 skips the served app")
    args = parser.parse_args()
    builds = page_build_seconds(args.repeats + 1)  # the first includes imports and caches a server has warm
    pn.state.add_periodic_callback = lambda *a, **k: None  # this script is the UI thread
    app = LabApp()
    app.settings.param.update(chain_length=args.chain_length, steps=args.steps)
    config = app.settings.config(snapshot_every=SNAPSHOT_EVERY, snapshot_window=200)
    rows = []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        rows.append((headless(config), *in_lab(app, config)))
    base = max(r[0] for r in rows)
    lab = max(r[1] for r in rows)
    print(f"MemoryChain L={args.chain_length}, Stream AC, RTU-RTRL 32x32, {args.steps} steps, best of {args.repeats}")
    print(f"headless train():          {base:8.1f} steps/s")
    print(f"lab session + UI refresh:  {lab:8.1f} steps/s   ratio {lab / base:.2f}  (goal >= 0.80)")
    print(
        f"plot updates:              {max(r[2] for r in rows):8.2f} /s     "
        f"({min(r[3] for r in rows):.1f} ms per refresh)"
    )
    print(f"a student's page build:    {min(builds[1:]):8.2f} s (best of {args.repeats}; the first: {builds[0]:.2f} s)")
    if args.served_seconds > 0:
        speed, updates, latency = served(args.served_seconds)
        print(f"served app + chromium:     {speed:8.1f} steps/s   ratio {speed / base:.2f}  (goal >= 0.80)")
        print(f"page plot-data changes:    {updates:8.2f} /s")
        print(f"first Start to first step: {latency:8.2f} s")


if __name__ == "__main__":
    main()
