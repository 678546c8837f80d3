"""Training speed inside the lab's session machinery vs headless ``train()``, measured in one run.

The lab case runs a ``LabApp`` without a server: its ``TrainingSession`` worker thread trains while this
script plays the UI thread, calling ``app.refresh()`` every 250 ms (draining events into the real plot
components). Headless is ``train(config)`` consumed in a plain loop. Same config, same steps.

    python benchmarks/lab_overhead.py --steps 6000 --repeats 2

This isolates the session machinery (thread, queue, draining, plot data). It does not include the Bokeh
server: with a browser connected, the server thread's document bookkeeping competes with the training
thread for the GIL (measured: ~57 steps/s served vs ~260 headless, see the issue note).
"""
from __future__ import annotations

import argparse
import time

import panel as pn

from lab.app import REFRESH_MS, SNAPSHOT_EVERY, LabApp
from rtu_core import train


def headless(config) -> float:
    started = time.perf_counter()
    for _ in train(config):
        pass
    return config.steps / (time.perf_counter() - started)


def in_lab(app: LabApp, config) -> tuple[float, float, float]:
    """(steps/s, plot refreshes/s that delivered data, mean ms per refresh)."""
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
    return config.steps / elapsed, refreshes / elapsed, 1000 * busy / max(refreshes, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--chain-length", type=int, default=8)
    args = parser.parse_args()
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
    print(f"plot updates:              {max(r[2] for r in rows):8.2f} /s     ({min(r[3] for r in rows):.1f} ms per refresh)")


if __name__ == "__main__":
    main()
