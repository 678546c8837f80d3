"""`make notebooks`: JupyterLab opens the notebooks with their Panel widgets live. In headless Chromium: open
notebook 02, run its cells up to the first interactive one, see its sliders and plot render, move a slider and see
the plot change.

Skipped only where chromium is absent and CI is unset (as the lab's browser tests)."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.browser import (
    CHROMIUM,
    FLAGS,
    LOAD_TIMEOUT_MS,
    ROOT,
    end_process,
    free_port,
    record_hosts,
    wait_for_port,
)

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed (and CI is unset)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("jupyterlab")

NOTEBOOK = "02_complex_eigenvalue_dynamics.ipynb"


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """JupyterLab as `make notebooks` starts it, on a copy of the notebooks (JupyterLab saves what it runs)."""
    notebooks = tmp_path_factory.mktemp("notebooks")
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, notebooks)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            "--allow-root",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={notebooks}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env={**os.environ, "RTU_LAB_FAST": "1", "PANEL_INLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 90)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}"
    finally:
        end_process(proc)


def run_and_advance(page, cells, index: int, tries: int = 3) -> None:
    """Shift+Enter on cell ``index``, as a person would: until JupyterLab has moved on to the next cell (a key press
    that arrives while a loaded machine keeps JupyterLab busy can be lost; pressing again re-runs the same cell),
    then until the kernel is idle again (the imports cell loads Panel's extension before the widgets need it)."""
    following = cells.nth(index + 1)
    for _ in range(tries):
        page.keyboard.press("Shift+Enter")
        deadline = time.time() + 30
        while time.time() < deadline and "jp-mod-active" not in (following.get_attribute("class") or ""):
            time.sleep(0.25)
        if "jp-mod-active" in (following.get_attribute("class") or ""):
            time.sleep(1.0)  # the kernel reports busy once the cell is sent
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=180_000)
            return
    raise AssertionError(f"JupyterLab did not move past cell {index}")


def picture(canvas) -> bytes | None:
    """A screenshot of the plot's canvas; None while Bokeh is replacing it (a redraw after the slider moved can
    detach the element the screenshot was waiting on)."""
    from playwright.sync_api import Error

    try:
        return canvas.screenshot(timeout=10_000)
    except Error as error:
        if "not attached" in str(error) or "Timeout" in str(error):
            return None
        raise


def test_notebook_02_interactive_cell_renders_its_sliders_and_plot(jupyterlab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            hosts = record_hosts(page)  # offline: every request goes to the local server
            page.goto(jupyterlab, timeout=LOAD_TIMEOUT_MS)
            cells = page.locator(".jp-Notebook .jp-Cell")
            cells.first.wait_for(timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            cells.nth(0).click()
            for index in range(4):  # markdown, imports, markdown, the interactive cell: run each, move to the next
                run_and_advance(page, cells, index)
            output = cells.nth(3).locator(".jp-OutputArea")
            sliders = output.locator(".noUi-target")
            sliders.first.wait_for(timeout=180_000)
            assert sliders.count() == 2  # r and θ
            canvas = output.locator("canvas").first
            canvas.wait_for(timeout=60_000)
            deadline = time.time() + 30
            while (before := picture(canvas)) is None:  # the first render may still be settling
                assert time.time() < deadline, "the plot's canvas did not settle"
                time.sleep(0.5)
            handle = output.locator(".noUi-handle").first
            handle.focus()
            for _ in range(10):
                page.keyboard.press("ArrowLeft")  # r down: the response decays faster
            deadline = time.time() + 30
            while picture(canvas) in (before, None):
                assert time.time() < deadline, "the plot did not change when the slider moved"
                time.sleep(0.5)
            assert hosts <= {"127.0.0.1", "localhost"}, hosts
        finally:
            browser.close()
