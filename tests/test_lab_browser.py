"""The lab in a real browser: serve app.py, open it in headless Debian Chromium (Playwright), press Start
and watch the plots' data and the step count grow; press Stop and watch them stand still.

Skipped only where chromium is absent and CI is unset; in CI it runs (and fails if chromium is missing).
Set RTU_LAB_SCREENSHOTS=1 to (re)write assets/lab.png, lab_1024.png, lab_sweep.png, lab_staleness.png and lab_demo.png.
"""

import os
import re
import time
from pathlib import Path

import pytest

from tests.browser import (
    CHROMIUM,
    FLAGS,
    LOAD_TIMEOUT_MS,
    PLOT_BACKENDS,
    PLOT_ROWS,
    PLOT_WIDTHS,
    ROOT,
    STATUS,
    chromium_page,
    record_hosts,
    served_app,
    status_step,
    training_processes,
    wait_until,
)

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed (and CI is unset)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")


SCREENSHOTS = bool(os.environ.get("RTU_LAB_SCREENSHOTS"))  # committed pictures: let training run longer first


def screenshot(page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str((ROOT / "assets" if SCREENSHOTS else tmp_path) / name), full_page=True)


def test_start_streams_into_plots_and_stop_freezes_them(page, tmp_path):
    rows_before = page.evaluate(PLOT_ROWS)
    page.get_by_role("button", name="Start", exact=True).click()
    wait_until(lambda: status_step(page) > 200 and page.evaluate(PLOT_ROWS) > rows_before + 50)
    step, rows = status_step(page), page.evaluate(PLOT_ROWS)
    wait_until(lambda: status_step(page) > step and page.evaluate(PLOT_ROWS) > rows)  # still growing: live
    if SCREENSHOTS:  # the committed picture: most of the 50k-step budget trained, the run still going for Stop
        wait_until(lambda: status_step(page) > 40_000, timeout=300.0)
    else:
        time.sleep(5.0)
    screenshot(page, "lab.png", tmp_path)
    page.get_by_role("button", name="Stop", exact=True).click()
    time.sleep(2.0)  # Stop freezes the page within 2 s ...
    step, rows = status_step(page), page.evaluate(PLOT_ROWS)
    time.sleep(3.0)
    assert status_step(page) == step and page.evaluate(PLOT_ROWS) == rows  # ... and it stays still
    wait_until(lambda: "stopped" in page.get_by_text(STATUS).inner_text(), timeout=10.0)
    page.get_by_role("button", name="Reset", exact=True).click()
    wait_until(lambda: status_step(page) == 0, timeout=2.0)


def test_reset_while_training_clears_the_page_within_two_seconds(page):
    # the diagnostics panels join the page at its first Start: the rows of an empty page are counted with them
    page.get_by_role("button", name="Start", exact=True).click()
    wait_until(lambda: status_step(page) > 0)
    page.get_by_role("button", name="Reset", exact=True).click()
    wait_until(lambda: status_step(page) == 0)
    time.sleep(2.0)
    rows_before = page.evaluate(PLOT_ROWS)
    page.get_by_role("button", name="Start", exact=True).click()
    wait_until(lambda: status_step(page) > 200 and page.evaluate(PLOT_ROWS) > rows_before + 50)
    page.get_by_role("button", name="Reset", exact=True).click()
    wait_until(lambda: status_step(page) == 0 and page.evaluate(PLOT_ROWS) <= rows_before, timeout=2.0)
    assert "idle" in page.get_by_text(STATUS).inner_text()
    page.get_by_role("button", name="Start", exact=True).click()  # and a new run starts at once
    wait_until(lambda: status_step(page) > 0, timeout=30.0)
    page.get_by_role("button", name="Reset", exact=True).click()


def test_closing_the_page_ends_its_training_within_five_seconds(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        page.goto(server, timeout=LOAD_TIMEOUT_MS)
        page.get_by_role("button", name="Start", exact=True).click(timeout=90_000)
        wait_until(lambda: status_step(page) > 100)
        assert training_processes(), "no training process found"
        page.close()
        closed = time.time()
        wait_until(lambda: not training_processes(), timeout=5.0)
        print(f"training ended {time.time() - closed:.1f} s after the page closed")
        browser.close()


def test_sweep_view_fills_success_vs_chain_length(page, tmp_path):
    page.get_by_text("Sweep chain lengths", exact=True).click()
    page.get_by_role("button", name="Start sweep", exact=True).wait_for()
    rows_before = page.evaluate(PLOT_ROWS)
    page.get_by_role("button", name="Start sweep", exact=True).click()
    wait_until(lambda: page.evaluate(PLOT_ROWS) > rows_before + 10)
    time.sleep(120.0 if SCREENSHOTS else 12.0)
    screenshot(page, "lab_sweep.png", tmp_path)
    page.get_by_role("button", name="Stop sweep", exact=True).click()
    # Stop ends the sweep; taking the committed picture, the sweep may have completed in its two minutes first
    ended = ("stopped", "completed") if SCREENSHOTS else ("stopped",)
    status = page.get_by_text(re.compile(r"Sweep: \w+ · step"))
    wait_until(lambda: any(word in status.inner_text() for word in ended))


COMBINATIONS = [
    (agent, cell, mode)
    for agent in ("Stream AC(λ)", "QRC(λ)", "PPO")
    for cell in ("RTU", "GRU", "FFN")
    for mode in (("RTRL", "TBPTT(1)") if cell == "RTU" else ("TBPTT(1)",))
]


def test_every_agent_cell_and_mode_trains_without_server_errors(tmp_path):
    """Click each agent x cell x mode as a user would (in an order that leaves RTRL selected before GRU/FFN are
    chosen: that used to break the session with a RecursionError), press Start, see the step count grow."""
    log = tmp_path / "server.log"
    with served_app(log=log) as url, chromium_page(url) as page:
        for agent, cell, mode in COMBINATIONS:
            for name in ("RTU", "RTRL", agent, cell, mode):
                page.get_by_role("button", name=name, exact=True).click()
                time.sleep(0.3)  # a person's pace: the server answers each click before the next
            page.get_by_role("button", name="Start", exact=True).click()
            wait_until(lambda: status_step(page) > 0, timeout=90.0)
            page.get_by_role("button", name="Reset", exact=True).click()
            wait_until(lambda: status_step(page) == 0)
        text = log.read_text()
    assert "Traceback" not in text and "Error" not in text, text[-3000:]


def test_fits_a_1024_by_768_screen_and_loads_nothing_from_outside(server, tmp_path):
    """A classroom projector: Start in view without scrolling, no plot narrower than 300 px, every plot on a 2D
    canvas (WebGL without a GPU is drawn in software); and offline: every request the page makes goes to the local
    server, and none for the MathJax bundle the page has no use for."""

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            hosts, urls = record_hosts(page), []
            page.on("request", lambda request: urls.append(request.url))
            page.goto(server, timeout=LOAD_TIMEOUT_MS)
            start = page.get_by_role("button", name="Start", exact=True)
            start.wait_for(timeout=90_000)
            box = start.bounding_box()
            assert box["y"] + box["height"] <= 768, box
            rows = page.evaluate(PLOT_ROWS)
            start.click()  # the plots as they are while training, with data in them
            wait_until(lambda: status_step(page) > 300 and page.evaluate(PLOT_ROWS) > rows + 100)
            time.sleep(3.0)
            widths = page.evaluate(PLOT_WIDTHS)
            assert len(widths) >= 5, widths
            assert min(widths) >= 300, widths
            assert set(page.evaluate(PLOT_BACKENDS)) == {"canvas"}
            page.screenshot(path=str((ROOT / "assets" if SCREENSHOTS else tmp_path) / "lab_1024.png"))
            assert hosts <= {"127.0.0.1", "localhost"}, hosts
            assert any("bokeh.min.js" in url for url in urls) and not any("mathjax" in url for url in urls)
        finally:
            browser.close()


def test_a_typed_step_size_out_of_range_is_not_left_on_show(page):
    """α is bounded (≤ 10): a typed 100 must not stay displayed while another value is used."""
    field = page.get_by_role("textbox").first  # the ObGD step size α (Stream AC, the default agent)
    field.fill("100")
    field.press("Tab")
    wait_until(lambda: 0 < float(field.input_value()) <= 10, timeout=30)


def test_classroom_demo_in_one_click(page):
    """The sidebar's Classroom demo button shows the demo tab and trains its four agents: the status counts steps
    and the success curves fill in; Reset the demo clears them."""
    status = page.get_by_text(re.compile(r"Demo: \w+ · step"))
    rows_before = page.evaluate(PLOT_ROWS)
    page.get_by_role("button", name="Classroom demo", exact=True).click()
    wait_until(lambda: "running" in status.inner_text())
    wait_until(lambda: page.evaluate(PLOT_ROWS) > rows_before + 40)
    step = int(re.search(r"step ([\d,]+)", status.inner_text()).group(1).replace(",", ""))
    assert step > 0
    if SCREENSHOTS:  # the committed picture: the demo's whole budget trained
        wait_until(lambda: "completed" in status.inner_text(), timeout=900)
        page.screenshot(path=str(ROOT / "assets" / "lab_demo.png"), full_page=True)
    page.get_by_role("button", name="Reset the demo", exact=True).click()
    wait_until(lambda: "idle" in status.inner_text(), timeout=5.0)


# What the staleness panel shows: its finite measures (the data sources with a 'staleness' column) and the plots'
# titles.
STALENESS = """() => { const out = {measures: 0, titles: []};
  for (const doc of Bokeh.documents) for (const model of doc._all_models.values()) {
    const type = model.type ?? model.constructor?.name;
    if (type === 'ColumnDataSource' && model.data.staleness)
      out.measures += Array.from(model.data.staleness).filter(Number.isFinite).length;
    if (type === 'Title' && model.text) out.titles.push(model.text); }
  return out; }"""


def test_taylor_switch_and_the_staleness_plot(page):
    """For each streaming agent, tick the Taylor correction and Start: the staleness panel fills with measures of
    S + C; untick it and start again: it measures S. With TBPTT(1) neither the switch nor the staleness setting is
    offered."""
    # Bokeh draws the checkbox's label beside the input, not in a <label> for it: find the box by the text it holds
    taylor = page.locator("div.bk-Checkbox").filter(has_text="Taylor-corrected RTRL").get_by_role("checkbox")
    for agent in ("QRC(λ)", "Stream AC(λ)"):
        page.get_by_role("button", name=agent, exact=True).click()
        for corrected in (True, False):
            taylor.set_checked(corrected)
            time.sleep(0.3)
            page.get_by_role("button", name="Start", exact=True).click()
            title = "RTRL staleness of S + C" if corrected else "RTRL staleness of S:"
            wait_until(
                lambda: (
                    page.evaluate(STALENESS)["measures"] > 4
                    and any(t.startswith(title) for t in page.evaluate(STALENESS)["titles"])
                )
            )
            if SCREENSHOTS and agent == "QRC(λ)" and corrected:  # the committed picture of the panel
                time.sleep(90.0)
                page.get_by_text("RTRL builds its sensitivities").scroll_into_view_if_needed()
                page.screenshot(path=str(ROOT / "assets" / "lab_staleness.png"))
            page.get_by_role("button", name="Reset", exact=True).click()
            wait_until(lambda: status_step(page) == 0 and page.evaluate(STALENESS)["measures"] == 0, timeout=10.0)
    page.get_by_role("button", name="TBPTT(1)", exact=True).click()
    wait_until(lambda: taylor.is_hidden() and page.get_by_text("Measure staleness every k steps").is_hidden())
    page.get_by_role("button", name="RTRL", exact=True).click()
    wait_until(lambda: taylor.is_visible())
