"""Serve the lab and drive it from headless Debian Chromium (Playwright): for the browser tests and benchmarks.

with served_app() as url, chromium_page(url) as page:
    page.get_by_role("button", name="Start", exact=True).click()
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

CHROMIUM = "/usr/bin/chromium"
# a page load on a loaded 2-core machine (the server and Chromium share it with training) can pass 30 s
LOAD_TIMEOUT_MS = 90_000
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[1]
STATUS = re.compile(r"step [\d,]+ · episodes")

# Rows in all of the page's Bokeh ColumnDataSources: grows while the plots are fed.
PLOT_ROWS = """() => { let rows = 0;
  for (const doc of Bokeh.documents) for (const model of doc._all_models.values()) {
    if (model.type !== 'ColumnDataSource' && model.constructor?.name !== 'ColumnDataSource') continue;
    const columns = Object.keys(model.data); if (columns.length) rows += model.data[columns[0]].length ?? 0; }
  return rows; }"""


# How the page's Bokeh plots draw: {output backend: number of plots} ("canvas" or "webgl").
PLOT_BACKENDS = """() => { const found = {};
  for (const doc of Bokeh.documents) for (const model of doc._all_models.values())
    if (model.output_backend !== undefined) found[model.output_backend] = (found[model.output_backend] ?? 0) + 1;
  return found; }"""


# Widths (CSS px) of the page's Bokeh plots, read from their views.
PLOT_WIDTHS = """() => { const widths = [];
  const walk = (view) => { if (!view) return;
    const type = view.model?.type ?? view.model?.constructor?.name;
    if (type === 'Figure' || type === 'Plot') widths.push(Math.round(view.el.getBoundingClientRect().width));
    for (const child of (view.child_views ?? [])) walk(child); };
  for (const view of Object.values(Bokeh.index)) walk(view);
  return widths; }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(timeout: float = 60.0, log: Path | None = None, args: list[str] = ()) -> Iterator[str]:
    """``python -m panel serve app.py`` on a free local port (as ``make lab`` serves it); yields the page's URL.
    The server's output goes to ``log`` when given (tests read it for tracebacks); ``args`` go to the app after
    ``--args`` (a teacher's limits)."""
    port = free_port()
    output = open(log, "w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panel",
            "serve",
            "app.py",
            "--warm",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            f"--allow-websocket-origin=127.0.0.1:{port}",
            *(["--args", *args] if args else []),
        ],
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/app"
    _SERVERS[url] = proc.pid
    try:
        wait_for_port(port, timeout)
        yield url
    finally:
        _SERVERS.pop(url, None)
        end_process(proc)
        if log is not None:
            output.close()


_SERVERS: dict[str, int] = {}  # the process id of each running served_app, by its URL


def server_pid(url: str) -> int:
    """The process id of the ``served_app`` serving ``url``."""
    return _SERVERS[url]


def wait_for_port(port: int, timeout: float) -> None:
    """Until a local server listens on ``port`` (or ``timeout`` seconds pass)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)


def end_process(proc: subprocess.Popen) -> None:
    """Terminate a server process, killing it if it does not end within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


def record_hosts(page) -> set:
    """The hosts of every http(s)/ws(s) request ``page`` makes from now on (data: and blob: are not requests out)."""
    hosts: set = set()

    def record(request) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss"):
            hosts.add(url.hostname)

    page.on("request", record)
    return hosts


@contextmanager
def chromium_page(url: str, width: int = 1500, height: int = 1400):
    """A Playwright page on ``url`` in Debian's chromium, once the app's Start button is there."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url, timeout=LOAD_TIMEOUT_MS)
            page.get_by_role("button", name="Start", exact=True).wait_for(timeout=LOAD_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def status_text(page) -> str:
    return page.get_by_text(STATUS).inner_text()


def status_step(page) -> int:
    """The step count the page's status line shows."""
    return int(re.search(r"step ([\d,]+)", status_text(page)).group(1).replace(",", ""))


def wait_until(condition, timeout: float = 120.0, poll: float = 0.3) -> None:
    """Until ``condition()`` holds; fails the test after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "the page did not get there in time"
        time.sleep(poll)


def training_processes(root: int | None = None) -> list:
    """The lab's training processes still alive: children of the fork servers below process ``root`` (default: this
    one, which started the servers or sessions)."""
    import psutil

    def alive(process) -> bool:
        try:
            return process.status() != psutil.STATUS_ZOMBIE  # an ended child not yet reaped is gone
        except psutil.NoSuchProcess:
            return False

    def forkserver(process) -> bool:
        try:
            return "forkserver" in " ".join(process.cmdline())
        except psutil.Error:
            return False

    try:
        below = psutil.Process(root).children(recursive=True)
    except psutil.Error:  # the root has gone: nothing below it either
        return []
    servers = [p for p in below if forkserver(p)]
    return [child for server in servers for child in server.children() if alive(child)]
