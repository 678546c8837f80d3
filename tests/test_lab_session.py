"""The lab's session controller and app object, without a browser."""

import multiprocessing
import os
import signal
import threading
import time
from types import SimpleNamespace

import panel as pn
import pytest

import lab.demo as demo_module
import lab.session as session_module
from lab.app import LabApp
from lab.controls import LabSettings
from lab.session import TrainingSession
from rtu_core import TrainConfig
from rtu_core.config import METHOD_LABELS

QUICK = dict(chain_length=3, hidden_size=6, width=5, eval_episodes=0, progress_every=10)


def training_threads() -> list:
    """The session's worker threads and training processes still alive."""
    threads = [t for t in threading.enumerate() if t.name == "rtu-lab-training" and t.is_alive()]
    return threads + [p for p in multiprocessing.active_children() if p.name == "rtu-lab-training"]


def wait_for(condition, timeout=60.0):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_start_stop_reset_twenty_times_leaves_no_thread():
    session = TrainingSession()
    for i in range(20):
        session.start(TrainConfig(steps=1_000_000, seed=i, **QUICK))
        assert session.running and session.status == "running"
        if i % 2:
            # promptness is test_stop_is_prompt's; here the first start may wait on the fork server's torch import,
            # which on a loaded machine takes longer than stop's default wait
            session.stop(wait=True, timeout=60)
            session.drain()
            assert session.status == "stopped"
        else:
            session.reset()
            assert session.status == "idle" and session.step == 0
        assert not session.running
    wait_for(lambda: training_threads() == [], timeout=30)  # a reset run's process ends in the background


def test_stop_is_prompt_and_counts_stop_changing():
    session = TrainingSession()
    session.start(TrainConfig(steps=1_000_000, **QUICK))
    wait_for(lambda: session.drain() is not None and session.step > 50)
    started = time.time()
    session.stop(wait=True)
    assert time.time() - started < 3.0 and not session.running
    session.drain()
    step, episodes = session.step, session.episodes
    assert step > 50 and episodes > 0 and session.steps_per_second > 0
    time.sleep(0.3)
    session.drain()
    assert (session.step, session.episodes) == (step, episodes)


def test_completed_run_reports_completed():
    session = TrainingSession()
    session.start(TrainConfig(steps=200, **QUICK))
    session._thread.join(60)
    session.drain()
    assert session.status == "completed" and session.step == 200 and session.episodes == 50
    assert session.recent_success is not None and session.recent_return is not None


def broken_training(config, **_):
    """Runs in the training process: fails after its first event."""
    yield from ()
    raise RuntimeError("boom in the loop")


def training_with_nan_rewards(config, **kwargs):
    """Runs in the training process: rewards turn NaN after 30 steps."""
    import rtu_core.training as training
    from tests.test_stops import nan_rewards_after

    training.make_population = nan_rewards_after(30)
    yield from training.train(config, **kwargs)


def test_exception_in_training_surfaces_as_error_and_session_recovers():
    session = TrainingSession(train_fn=broken_training)
    session.start(TrainConfig(steps=100, **QUICK))
    session._thread.join(30)
    session.drain()
    assert session.status == "error" and "boom in the loop" in session.message
    session._train_fn = session_module.train
    session.start(TrainConfig(steps=100, **QUICK))  # the app keeps working
    session._thread.join(60)
    session.drain()
    assert session.status == "completed"


def test_divergence_surfaces_as_error():
    session = TrainingSession(train_fn=training_with_nan_rewards)
    session.start(TrainConfig(steps=1000, **QUICK))
    session._thread.join(60)
    session.drain()
    assert session.status == "error" and "non-finite" in session.message


def test_a_killed_training_process_surfaces_as_error():
    session = TrainingSession()
    session.start(TrainConfig(steps=1_000_000, **QUICK))
    wait_for(lambda: session.drain() is not None and session.step > 20)
    children = [p for p in multiprocessing.active_children() if p.name == "rtu-lab-training"]
    assert len(children) == 1
    os.kill(children[0].pid, signal.SIGKILL)
    session._thread.join(30)
    session.drain()
    assert session.status == "error" and "exited unexpectedly" in session.message and not session.running


def test_session_destroyed_stops_its_thread(monkeypatch):
    registered = []
    monkeypatch.setattr(pn.state, "on_session_destroyed", registered.append)
    monkeypatch.setattr(type(pn.state), "curdoc", property(lambda self: SimpleNamespace(session_context=object())))
    session = TrainingSession()
    monkeypatch.undo()
    assert len(registered) == 1
    session.start(TrainConfig(steps=1_000_000, **QUICK))
    registered[0](object())  # the server destroys the session
    assert not session.running and training_threads() == []


def test_settings_offer_rtrl_only_for_rtu():
    settings = LabSettings()
    assert settings.mode == "rtrl"
    settings.cell = "gru"
    assert settings.mode == "tbptt" and list(settings.param.mode.objects) == ["tbptt"]
    settings.cell = "rtu"
    assert "rtrl" in list(settings.param.mode.objects)
    config = settings.config()
    assert config.cell == "rtu" and config.chain_length == settings.chain_length


def test_app_refresh_feeds_plots_and_reset_clears(monkeypatch):
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: None)
    app = LabApp()
    app.settings.param.update(chain_length=3, hidden_size=6, width=5, steps=400)
    app.start()
    app.session._thread.join(60)
    app.refresh()
    assert len(app.curves.buffer.data) == 100  # one row per episode
    assert len(app.traces.buffer.data) >= 5  # one row per snapshot
    assert len(app.eigenvalues.pipe.data) == 6  # one point per RTU unit
    assert set(app.hidden.pipe.data["t"]) <= set(range(4)) and len(app.hidden.pipe.data) > 0
    staleness = app.staleness.buffer.data  # a measure every 50 steps (the default), of both networks
    assert list(staleness["step"]) == list(range(50, 401, 50))
    assert staleness[["first", "second"]].notna().any().all() and (staleness[["first", "second"]] > 0).any().all()
    app.reset()
    assert len(app.curves.buffer.data) == 0 and app.session.status == "idle"
    assert len(app.staleness.buffer.data) == 0


def test_taylor_switch_and_staleness_apply_to_streaming_rtrl_only(monkeypatch):
    """The Taylor switch reaches the run's config and the staleness plot's title (it then measures S + C); with
    TBPTT(1) or PPO neither is offered, the config drops them and the staleness panel is hidden."""
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: None)
    app = LabApp()
    app.settings.param.update(agent="qrc", chain_length=3, hidden_size=6, width=5, steps=300, taylor_sensitivity=True)
    assert app.settings.applies("taylor_sensitivity") and app.settings.applies("staleness_every")
    app.start()
    assert app.settings.config().taylor_sensitivity and app._panels["staleness"].visible
    app.session._thread.join(60)
    app.refresh()
    assert app.staleness.labels == ["q", "h"] and app.staleness.corrected  # its title: "staleness of S + C"
    assert app.staleness.buffer.data[["first", "second"]].notna().any().all()
    app.reset()
    # on by default where episodes are short (a measure replays the episode so far), off on MuJoCo and POPGym
    for task, every in (("mujoco:Hopper", 0), ("popgym:RepeatFirstEasy", 0), ("kmemory_chain", 50)):
        app.settings.task = task
        assert app.settings.staleness_every == every
    app.settings.task = "memory_chain"
    for change in (dict(mode="tbptt"), dict(mode="rtrl", agent="ppo", steps=4096)):
        app.settings.param.update(**change)
        assert not app.settings.applies("taylor_sensitivity") and not app.settings.applies("staleness_every")
        config = app.settings.config()
        assert not config.taylor_sensitivity and config.staleness_every == 0
        app.start()
        assert not app._panels["staleness"].visible
        app.reset()


def test_ppo_with_the_rtu_shows_its_eigenvalues_and_hides_per_step_diagnostics(monkeypatch):
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: None)
    app = LabApp()
    app.settings.param.update(agent="ppo", chain_length=3, hidden_size=6, width=5, steps=4096)
    app.start()
    assert app._panels["eigenvalues"].visible and app._empty_note.visible
    assert not app._panels["hidden"].visible and not app._panels["traces"].visible
    app.session._thread.join(120)
    app.refresh()
    assert len(app.eigenvalues.pipe.data) == 6  # one point per unit of PPO's actor RTU
    assert len(app.curves.buffer.data) > 0
    app.reset()
    app.settings.cell = "gru"
    app.start()
    assert not app._panels["eigenvalues"].visible
    app.reset()


def test_sweep_runs_methods_as_populations_of_lengths_and_seeds(monkeypatch):
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: None)
    app = LabApp()
    app.settings.param.update(hidden_size=6, width=5)
    app.sweep.param.update(chain_lengths=[2, 4, 8], methods=["rtu-rtrl", "ffn-tbptt"], seeds=2, steps=300)
    jobs = app.sweep.jobs()
    assert len(jobs) == 2 and all(len(job) == 6 for job in jobs)  # one population per method
    assert sorted({(c.chain_length, c.seed) for c in jobs[0]}) == [(L, s) for L in (2, 4, 8) for s in (0, 1)]
    app.sweep.start()
    wait_for(lambda: len(training_threads()) == 2)  # one worker thread and one training process for the whole sweep
    app.sweep.session._thread.join(120)
    app.refresh()
    frame = app.sweep.pipe.data
    assert sorted(set(frame["method"])) == ["FFN (no memory)", "RTU, RTRL"]
    assert sorted(set(frame["chain_length"])) == [2, 4, 8] and set(frame["members"]) == {2}
    assert app.sweep.session.status == "completed"


def test_sweep_without_methods_is_an_error():
    app = LabApp()
    app.sweep.methods = []
    with pytest.raises(ValueError, match="at least one method"):
        app.sweep.start()


def test_app_displays_in_a_notebook_kernel():
    """`pn.extension(); LabApp()` in a notebook cell renders the Panel app (as JupyterLab shows it)."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import panel as pn\nfrom lab.app import LabApp\npn.extension(notifications=True)\nLabApp()"
        )
    ]
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    result = [o for o in notebook.cells[0].outputs if o["output_type"] == "execute_result"]
    assert result and "application/vnd.holoviews_exec.v0+json" in result[0]["data"]


def test_closed_tab_websocket_noise_is_filtered_from_the_server_log():
    """asyncio logs a traceback when a refresh writes to the websocket of a tab that just closed: dropped; other
    errors are kept."""
    import logging

    from tornado.websocket import WebSocketClosedError

    from lab.app import _ClosedTabNoise

    def record(error: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "asyncio", logging.ERROR, __file__, 1, "Task exception was never retrieved", (), (type(error), error, None)
        )

    noise = _ClosedTabNoise()
    assert not noise.filter(record(WebSocketClosedError()))
    assert noise.filter(record(ValueError("a real error")))
    assert any(isinstance(f, _ClosedTabNoise) for f in logging.getLogger("asyncio").filters)


def test_classroom_demo_runs_four_methods_as_populations_of_seeds(monkeypatch):
    from lab.demo import SEEDS, demo_jobs

    jobs = demo_jobs()
    assert [(job[0].cell, job[0].mode) for job in jobs] == [
        ("rtu", "rtrl"),
        ("rtu", "tbptt"),
        ("gru", "tbptt"),
        ("ffn", "tbptt"),
    ]
    assert all(len(job) == SEEDS and [c.seed for c in job] == list(range(SEEDS)) for job in jobs)
    assert jobs[0][0].snapshot_every > 0 and all(c.snapshot_every == 0 for job in jobs[1:] for c in job)
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: None)
    monkeypatch.setitem(demo_module.DEMO, "steps", 300)
    monkeypatch.setitem(demo_module.DEMO, "hidden_size", 6)
    app = LabApp()
    app.start_demo()
    app.demo.session._thread.join(120)
    app.refresh()
    frame = app.demo.pipe.data
    assert sorted(set(frame["method"])) == sorted(METHOD_LABELS.values())
    assert len(app.memory.pipe.data) == 0 and len(app.demo.memory.pipe.data) > 0  # the demo's own memory plot
    assert app.demo.session.status == "completed"


def test_hidden_state_trajectories_are_drawn_per_unit_and_episode():
    """The grey trajectories: one line per unit and episode (a line never joins the end of one episode to the start
    of the next), drawn as one path broken by NaN rows."""
    import numpy as np
    import pandas as pd

    from lab.plots import AXES, HiddenStatePlot

    t = np.array([0, 1, 2, 0, 1, 2, 3])  # two episodes
    rows = [
        pd.DataFrame({AXES[0]: t + 10 * unit, AXES[1]: -t, "t": t, "unit": unit, "cue": [0.0] * 3 + [1.0] * 4})
        for unit in (0, 1)
    ]
    overlay = HiddenStatePlot("actor")._draw(pd.concat(rows, ignore_index=True))
    (path,) = overlay.Path.I.data
    breaks = np.flatnonzero(np.isnan(path[:, 0]))
    lines = np.split(path, breaks)
    lines = [line[~np.isnan(line[:, 0])] for line in lines]
    assert [len(line) for line in lines if len(line)] == [3, 4, 3, 4]
    assert [line[0, 0] for line in lines if len(line)] == [0, 0, 10, 10]  # each starts at its episode's first step


def test_the_status_line_says_when_the_native_step_is_being_built(monkeypatch):
    """A training process that must build the native step first says so before its first step; the notice goes
    when training begins. Runs that do not use the native step say nothing."""
    import lab.worker as worker

    monkeypatch.setattr(worker.native, "ready", lambda: False)
    monkeypatch.setattr(worker.native, "available", lambda: True)
    sent = []
    worker.prepare_native([TrainConfig(**QUICK)], sent.append)
    assert [m.message for _, m in sent] == ["building the native step, once, about a minute…"]
    sent.clear()
    worker.prepare_native([TrainConfig(engine="eager", **QUICK)], sent.append)
    assert sent == []

    session = TrainingSession()
    session._queue.put((worker.END, worker.Notice("building the native step, once, about a minute…")))
    session.drain()
    assert session.message.startswith("building the native step")
    from rtu_core import Progress

    session._queue.put((0, Progress(step=20, total_steps=100, population=1, steps_per_second=100.0, td_error=None)))
    session.drain()
    assert session.message == ""


def test_the_gradient_follows_the_cell_every_time():
    """RTU → GRU → RTU brings RTRL back (the RTU never trains with TBPTT(1) left over from the GRU); a TBPTT(1)
    chosen for the RTU comes back with it too."""
    settings = LabSettings()
    for cell in ("gru", "rtu", "ffn", "rtu"):
        settings.cell = cell
        assert settings.mode == ("rtrl" if cell == "rtu" else "tbptt")
        assert settings.config().mode == settings.mode
    settings.mode = "tbptt"
    settings.cell, settings.cell = "gru", "rtu"
    assert settings.mode == "tbptt"


def test_a_typed_value_out_of_range_is_corrected_and_says_so(monkeypatch):
    import lab.controls as controls

    said = []
    monkeypatch.setattr(controls, "notify", lambda message, level="error": said.append((level, message)))
    settings = LabSettings()
    inputs = {w.name: w for w in settings.widgets().select(pn.widgets.Widget) if hasattr(w, "value")}
    for label, typed, used, name in (
        ("ObGD step size α", 0.0, 1e-4, "lr"),
        ("ObGD step size α", 100.0, 10.0, "lr"),
        ("Seed", -3, 0, "seed"),
        ("Step budget", 10**8, 5_000_000, "steps"),
    ):
        inputs[label].value = typed
        assert getattr(settings, name) == used and inputs[label].value == used
        level, message = said[-1]
        assert level == "warning" and message.startswith(f"{label}: {typed:g} is") and f"{used:g} is used" in message
    count = len(said)
    inputs["Seed"].value = 7  # in range: used as typed, nothing said
    assert settings.seed == 7 and len(said) == count
    settings.lr = 2.0  # a change from elsewhere (a preset, the URL) shows in the field
    assert inputs["ObGD step size α"].value == 2.0


def test_pause_holds_the_run_step_advances_it_by_one_and_resume_goes_on():
    """Pause holds the training process where it is (the step count stands still); each Step advances it by exactly
    one environment step, reported at once with a snapshot of the running episode; Resume goes on from there (the
    run never restarts); Stop while paused ends it."""
    from rtu_core import Progress, Snapshot

    session = TrainingSession()
    session.start(TrainConfig(steps=1_000_000, snapshot_every=40, snapshot_window=64, **QUICK))
    wait_for(lambda: session.drain() is not None and session.step > 100)
    session.pause()
    assert session.status == "pausing"  # until the process says it holds, with every step before it in
    wait_for(lambda: session.drain() is not None and session.status == "paused")
    held = session.step
    time.sleep(1.0)
    assert [e for _, e in session.drain() if isinstance(e, Progress)] == [] and session.step == held
    for expected in (held + 1, held + 2, held + 3):
        session.step_once()
        events = []
        wait_for(lambda: events.extend(e for _, e in session.drain()) or any(isinstance(e, Snapshot) for e in events))
        assert session.step == expected and session.status == "paused"
        snapshot = next(e for e in events if isinstance(e, Snapshot))
        assert snapshot.step == expected
    session.resume()
    assert session.status == "running"
    wait_for(lambda: session.drain() is not None and session.step > held + 100)
    session.pause()
    session.stop(wait=True, timeout=30)
    session.drain()
    assert session.status == "stopped" and not session.running


def test_finished_runs_stay_as_labelled_overlays_until_cleared(monkeypatch):
    """Each new Start keeps the run before it (finished or stopped) on the return and success plots, labelled with
    the settings in which the runs differ; at most five are kept; Clear runs removes them."""
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: None)
    app = LabApp()
    app.settings.param.update(chain_length=3, hidden_size=6, width=5, steps=200)
    for cell in ("rtu", "gru", "ffn", "rtu", "gru", "ffn", "rtu"):
        app.settings.cell = cell
        app.start()
        app.session._thread.join(60)
        app.refresh()
    data, labels = app.curves.past_pipe.data
    assert len(app.curves.past) == 5 and sorted(set(data["run"])) == [0, 1, 2, 3, 4]
    assert labels == ["cell=gru mode=tbptt", "cell=ffn mode=tbptt", "cell=rtu mode=rtrl", "cell=gru mode=tbptt",
                      "cell=ffn mode=tbptt", "cell=rtu mode=rtrl"]  # runs 2-6, then the current one  # fmt: skip
    app.reset()  # Reset forgets the current run, not the compared ones
    assert len(app.curves.past) == 5
    app.clear_runs_button.clicks += 1
    assert app.curves.past == [] and len(app.curves.past_pipe.data[0]) == 0


def test_the_paper_results_tab_draws_the_committed_studies_without_training():
    """Success vs chain length comes from the committed summaries (docs/results.md: RTU-RTRL 1.00 up to L = 32,
    the FFN at chance); the tab builds with no training process."""
    from lab.paper import RESULTS, PaperResults, memory_chain_runs

    runs = memory_chain_runs(RESULTS / "memory_chain_500k")
    assert len(runs) == 4 * 7 * 5
    success = runs.groupby(["method", "chain_length"])["success"].mean()
    assert all(success["rtu-rtrl"][L] == 1.0 for L in (2, 4, 8, 16, 32))
    assert all(abs(success["ffn-tbptt"][L] - 0.5) < 0.02 for L in (2, 4, 8, 16, 32, 64, 128))
    assert (runs["status"] == "diverged").sum() == 5  # RTU-RTRL at 64 (1) and 128 (2), TBPTT(1) at 128 (2)
    tab = PaperResults().__panel__()
    assert len(tab) == 6 and not training_threads()


def test_the_paper_size_demo_runs_the_papers_network(monkeypatch):
    """QRC(λ) with RTU 192 and width 128 (the paper's MemoryChain presets) on L = 16, four methods x three seeds;
    shortened here, it trains and its memory view (QRC's network q) fills."""
    from lab.demo import PAPER, demo_jobs

    jobs = demo_jobs(spec=PAPER)
    assert [(j[0].cell, j[0].mode) for j in jobs] == [("rtu", "rtrl"), ("rtu", "tbptt"), ("gru", "tbptt"),
                                                      ("ffn", "tbptt")]  # fmt: skip
    first = jobs[0][0]
    assert (first.agent, first.hidden_size, first.width, first.chain_length) == ("qrc", 192, 128, 16)
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: None)
    monkeypatch.setitem(PAPER.settings, "steps", 400)
    monkeypatch.setitem(PAPER.settings, "hidden_size", 8)
    app = LabApp()
    app.paper_demo.start()
    app.paper_demo.session._thread.join(120)
    app.refresh()
    assert app.paper_demo.session.status == "completed"
    assert len(app.paper_demo.memory.pipe.data) > 0 and app.paper_demo.memory.title.startswith("q:")
