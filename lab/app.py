"""The lab page: settings, Start / Stop / Reset, a status line and live plots; plus the sweep view.

Everything that runs lives here (importable); ``app.py`` only builds a ``LabApp`` and serves it.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import panel as pn
from panel.io import resources as pn_resources
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from rtu_core import ConfigError, Snapshot, Staleness

from .controls import SHARED, LabSettings
from .demo import PAPER, ClassroomDemo
from .paper import PaperResults
from .plots import (
    EigenvaluePlot,
    HiddenStatePlot,
    LearningCurves,
    MemoryPlot,
    StalenessPlot,
    TraceMagnitudes,
    readout_window,
)
from .session import TrainingSession, notify
from .sweep import SweepView

REFRESH_MS = 400
PAPER_RESULTS_TAB = 3  # the tabs: Train, Sweep chain lengths, Classroom demo, Paper results
DIAGNOSTICS_EVERY_S = 1.0  # hidden state, eigenvalues, traces, staleness: redrawn whole, so at most once a second
SNAPSHOT_EVERY = 40
# after a refresh that took t seconds the next waits IDLE_FACTOR * t: on a loaded machine the server stays free for
# clicks (Stop, Reset) most of the time instead of running refresh after refresh
IDLE_FACTOR = 2.0
CAPTIONS = {
    "returns": "Each grey dot is one episode's return; the line is their running average. On MemoryChain an episode "
    "returns +1 when the agent names the bit it was shown at the start, −1 when it names the other.",
    "successes": "The fraction of episodes answered right (KMemoryChain: of the recalls in each episode). Chance is "
    "0.5: a curve well above the dashed line means the agent is remembering.",
    "memory": "Is the bit held? One line per recent episode: its hidden state read out along the direction that "
    "best tells the two remembered bits apart (the difference of their mean states at that step, found from the "
    "other episodes: a memory that holds nothing reads at chance). Blue: the episode asks for bit 0, red: bit 1. "
    "When the agent remembers, the colours part once the bit is shown and stay apart until the question; the title "
    "gives how many episodes the read-out gets right at the question step. Held is not yet used: a GRU trained by "
    "TBPTT(1) often holds the bit (its recurrence carries what it saw) while its success stays at chance, because a "
    "one-step gradient never teaches the policy to read it.",
    "hidden": "A closer look at a few units: the hidden state h_t of the RTU units that differ most between the two "
    "bits, in the complex plane, minus the average state at the same step. Each unit holds only a part of the "
    "memory, so the colours can overlap here even when the read-out above tells the bits apart.",
    "eigenvalues": "One dot per RTU unit: λ = r·e^(iθ). The distance r from the centre sets how long the unit "
    "remembers (about 1/(1 − r) steps), the angle θ how fast it rotates. Units near the circle remember longest.",
    "traces": "What learning carries forward from step to step: RTRL's sensitivities ∂h/∂p (RTU in RTRL mode only) "
    "and each network's eligibility trace z. Both start again from zero with each episode.",
    "staleness": "RTRL builds its sensitivities S step by step while the parameters keep changing, so S is a little "
    "stale: replaying the episode so far under the current parameters gives the S that exact RTRL would have now. "
    "Each dot is that distance, relative. It grows with the step size and the episode's length; the Taylor correction "
    "(sidebar) carries a first-order fix C beside S, and then S + C is measured.",
}
EMPTY = {
    "ppo": "PPO is the batched baseline: it learns from whole rollouts, so it has no per-step hidden-state or trace "
    "diagnostics; with the RTU its actor's eigenvalues are shown.",
    "ffn": "The FFN has no memory: there is no hidden state, eigenvalue or sensitivity to show.",
    "gru": "The GRU has no eigenvalues and, trained by TBPTT(1), no RTRL sensitivities: those panels are hidden.",
    "tbptt": "TBPTT(1) carries no sensitivities from step to step: the trace panel shows the eligibility traces only.",
}
BEFORE_START = "Press **Start**: the return and success of each episode and what the memory holds appear here."
INTRO = """### Streaming RL under partial observability, with exact RTRL
Pick a task, agent, cell and mode, then **Start**. The agent learns from each transition once, as it
arrives. On MemoryChain it must remember a bit shown at the first step until it is asked, L steps later:
an RTU trained by RTRL can; TBPTT(1) has a one-step gradient horizon and a memoryless FFN cannot."""


def _captioned(element, caption: str) -> pn.Column:
    """A plot that fills the width, with its caption (``CAPTIONS``) under it."""
    return pn.Column(
        pn.pane.HoloViews(element, sizing_mode="stretch_width", linked_axes=False),
        pn.pane.Markdown(CAPTIONS[caption], styles={"color": "#555"}, margin=(0, 10, 10, 10)),
        sizing_mode="stretch_width",
    )


def _time_left(seconds: float) -> str:
    if seconds >= 90 * 60:
        return f"about {seconds / 3600:.1f} h left"
    if seconds >= 90:
        return f"about {seconds / 60:.0f} min left"
    return f"about {max(seconds, 1):.0f} s left"


def _status_text(status, step, episodes, sps, success, ret, message, total=0, member_sps=0.0) -> str:
    parts = [f"**{status}**", f"step {step:,}", f"episodes {episodes:,}", f"{sps:,.0f} steps/s"]
    if status == "running" and total > step and member_sps > 0:
        parts.append(f"{_time_left((total - step) / member_sps)} of {total:,} steps")
    if success is not None:
        parts.append(f"success {success:.2f}")
    if ret is not None:
        parts.append(f"return {ret:+.2f}")
    if message:
        parts.append(message)
    return " · ".join(parts)


@contextmanager
def _batched(doc):
    """Plot changes made in the block recompute the document's model graph once and reach the browser as one
    message (no document: nothing to batch)."""
    if doc is None:
        yield
        return
    with doc.models.freeze(), pn.io.hold(doc):
        yield


def _tab_closed(doc) -> bool:
    """Whether the page of ``doc`` has gone (no browser connection left). Bokeh destroys such a session only after
    its unused-session timeout (15-30 s, its defaults); training a closed tab meanwhile would hold a core, so the
    refresh callback, which keeps running until then, asks this and stops the runs at once."""
    session = getattr(doc.session_context, "_session", None)  # bokeh's ServerSession (None outside a server)
    return session is not None and session.connection_count == 0


class _ClosedTabNoise(logging.Filter):
    """Drop asyncio's "Task exception was never retrieved" tracebacks for writes to a websocket that a closed tab
    already shut: expected when a tab closes mid-refresh, and not worth a traceback in the server's terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else getattr(record, "exception", None)
        if error is None and isinstance(getattr(record, "args", None), dict):
            error = record.args.get("exception")
        return not isinstance(error, (WebSocketClosedError, StreamClosedError))


logging.getLogger("asyncio").addFilter(_ClosedTabNoise())

# Panel's Fast design links a web font from Google; classrooms are often offline, so the page uses the system's
# sans-serif font instead. Everything else the page loads, Panel serves itself (tested: no request leaves the machine).
pn.theme.Fast._resources = {key: value for key, value in pn.theme.Fast._resources.items() if key != "font"}
# Panel ships Bokeh's 1.8 MB MathJax bundle with every page that holds a Markdown pane, in case it holds LaTeX
# (panel.io.resources._panel_use_mathjax). The lab's text has none, and a class's browsers, often on the server's own
# cores, would each parse it: the page leaves it out (tested: no page loads bokeh-mathjax).
pn_resources._panel_use_mathjax = lambda roots: False


class LabApp(pn.viewable.Viewer):
    """The lab page: settings, Start / Stop / Reset, the status line, the live plots and the sweep tab."""

    def __init__(self, **params):
        super().__init__(**params)
        self.settings = LabSettings()
        self.session = TrainingSession()
        self.curves = LearningCurves()
        self.memory = MemoryPlot("actor")
        self.hidden = HiddenStatePlot("actor")
        self.traces = TraceMagnitudes("actor")
        self.eigenvalues = EigenvaluePlot("actor")
        self.staleness = StalenessPlot()
        self.sweep = SweepView(self.settings, on_start=self._ensure_refresh)
        self.demo = ClassroomDemo(on_start=self._ensure_refresh)
        self.paper_demo = ClassroomDemo(on_start=self._ensure_refresh, spec=PAPER)
        self.demo_button = pn.widgets.Button(name="Classroom demo", button_type="success", width=250)
        self.demo_button.on_click(lambda _: self.start_demo())
        self._tabs: pn.Tabs | None = None
        self.start_button = pn.widgets.Button(name="Start", button_type="primary")
        self.stop_button = pn.widgets.Button(name="Stop", button_type="warning")
        self.reset_button = pn.widgets.Button(name="Reset")
        self.pause_button = pn.widgets.Button(name="Pause")
        self.step_button = pn.widgets.Button(name="Step")
        self.clear_runs_button = pn.widgets.Button(name="Clear runs", width=120)
        self.clear_runs_button.on_click(lambda _: self.curves.clear_runs())
        self.pause_button.on_click(lambda _: self.toggle_pause())
        self.step_button.on_click(lambda _: self.step_once())
        self.session.param.watch(self._name_pause_button, "status")
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.session.stop(wait=False))
        self.reset_button.on_click(lambda _: self.reset())
        for session in self.sessions:
            session.param.watch(self._notify_error, "message")
        self._callback = None
        self._panels = {
            "memory": _captioned(self.memory.element, "memory"),
            "hidden": _captioned(self.hidden.element, "hidden"),
            "eigenvalues": _captioned(self.eigenvalues.element, "eigenvalues"),
            "traces": _captioned(self.traces.element, "traces"),
            "staleness": _captioned(self.staleness.element, "staleness"),
        }
        self._empty_note = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width")
        # the plots join the page at its first Start: building them is most of a page's cost to the server, which
        # builds a whole class's pages one after another
        self._diagnostics = pn.Column(sizing_mode="stretch_width")
        self._curves = pn.Row(pn.pane.Markdown(BEFORE_START, styles={"color": "#555"}), sizing_mode="stretch_width")
        self._paper_results = pn.Column(sizing_mode="stretch_width")
        self._snapshots: list[Snapshot] = []
        self._measures: list[Staleness] = []  # staleness measures not yet drawn
        self._last_diagnostics = 0.0
        self._next_refresh = 0.0

    @property
    def sessions(self) -> tuple:
        """Every training session of the page (each tab's)."""
        return (self.session, self.sweep.session, self.demo.session, self.paper_demo.session)

    # -- actions ----------------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            window = readout_window(self.settings.chain_length)
            config = self.settings.config(snapshot_every=SNAPSHOT_EVERY, snapshot_window=window)
        except ConfigError as error:
            notify(str(error))
            return
        if self.session.running:
            notify("a run is in progress: Stop or Reset it first")
            return
        self.curves.start_run(config)
        self.clear_plots()
        network = "q" if config.agent == "qrc" else "actor"
        for plot in (self.memory, self.hidden, self.traces, self.eigenvalues):
            plot.network = network
        self.traces.set_networks(["q", "h"] if config.agent == "qrc" else ["actor", "critic"])
        self.staleness.set_run(config.taylor_sensitivity)
        self._show_diagnostics_for(config)
        self.session.start(config)
        self._ensure_refresh()

    def reset(self) -> None:
        self.session.reset()
        self.clear_plots()

    def toggle_pause(self) -> None:
        """Pause the run where it is, or resume it."""
        if self.session.status == "paused":
            self.session.resume()
        else:
            self.session.pause()

    def step_once(self) -> None:
        """One environment step of the paused run (a running run is paused first), shown at once."""
        self.session.pause()
        self.session.step_once()
        self._last_diagnostics = 0.0  # the step's snapshot is drawn at the next refresh

    def _name_pause_button(self, event) -> None:
        self.pause_button.name = "Resume" if event.new == "paused" else "Pause"

    def start_demo(self) -> None:
        """The classroom demo in one click: its tab shown, its four agents training."""
        if self._tabs is not None:
            self._tabs.active = 2
        self.demo.start()

    def _show_diagnostics_for(self, config) -> None:
        """Show the diagnostics panels that have something to show for this run, and say why the others are not."""
        if not self._diagnostics.objects:
            self._curves.objects = [
                _captioned(self.curves.returns, "returns"),
                _captioned(self.curves.successes, "successes"),
            ]
            self._diagnostics.objects = list(self._panels.values())
        ppo, cell = config.agent == "ppo", config.cell
        self._panels["memory"].visible = not ppo and cell != "ffn" and config.env in ("memory_chain", "kmemory_chain")
        self._panels["hidden"].visible = not ppo and cell != "ffn"
        self._panels["eigenvalues"].visible = cell == "rtu"
        self._panels["traces"].visible = not ppo
        self._panels["staleness"].visible = bool(config.staleness_every)  # streaming RTRL only (the settings)
        if ppo:
            note = EMPTY["ppo"]
        elif cell != "rtu":
            note = EMPTY[cell]
        else:
            note = EMPTY["tbptt"] if config.mode == "tbptt" else ""
        self._empty_note.object = note
        self._empty_note.visible = bool(note)

    def clear_plots(self) -> None:
        self._snapshots, self._measures = [], []
        with _batched(pn.state.curdoc):
            for plot in (self.curves, self.memory, self.hidden, self.traces, self.eigenvalues, self.staleness):
                plot.clear()

    # -- UI-thread refresh ------------------------------------------------------------------------------
    def _ensure_refresh(self) -> None:
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.refresh, period=REFRESH_MS)

    def refresh(self) -> None:
        """Drain every session's events into the plots (runs on the UI thread).

        All plot updates of one refresh share one frozen document: Bokeh then recomputes the document's
        model graph once per refresh instead of once per changed glyph (a walk that otherwise dominates the served
        app's CPU), and ``hold`` sends the changes to the browser as one message. A refresh with nothing to draw
        skips the frozen document altogether: its recompute alone (tens of ms for a page) would otherwise be paid
        every REFRESH_MS by every open page, training or not, and a class of idle pages would hold the server.
        """
        doc = pn.state.curdoc
        if doc is None:
            self._draw(self._drain())
            return
        if _tab_closed(doc):
            for session in self.sessions:
                session.stop(wait=False)
            return
        started = time.monotonic()
        if started < self._next_refresh:
            return
        drained = self._drain()
        if not any(drained) and not self._diagnostics_due():
            return
        with _batched(doc):
            self._draw(drained)
        took = time.monotonic() - started
        self._next_refresh = time.monotonic() + IDLE_FACTOR * took

    def _drain(self) -> tuple[list, list, list, list]:
        """The events each session (Train, Sweep, the two demos) produced since the last refresh."""
        return tuple(session.drain() for session in self.sessions)

    def _diagnostics_due(self) -> bool:
        """Whether snapshots or staleness measures wait to be drawn and their once-a-second turn has come."""
        now = time.monotonic()
        due = now - self._last_diagnostics >= DIAGNOSTICS_EVERY_S or not self.session.running
        return bool(self._snapshots or self._measures) and due

    def _draw(self, drained: tuple[list, list, list, list]) -> None:
        train, sweep, demo, paper_demo = drained
        events = [event for _, event in train]
        if events:
            self.curves.update(events)
            self._snapshots += [e for e in events if isinstance(e, Snapshot)]
            self._measures += [e for e in events if isinstance(e, Staleness)]
        if self._diagnostics_due():
            if self._snapshots:
                self.memory.update(self._snapshots[-1])
                self.hidden.update(self._snapshots[-1])
                self.eigenvalues.update(self._snapshots[-1])
                self.traces.update_many(self._snapshots)
            self.staleness.update(self._measures)
            self._snapshots, self._measures, self._last_diagnostics = [], [], time.monotonic()
        self.sweep.update(sweep)
        self.demo.update(demo)
        self.paper_demo.update(paper_demo)

    def _notify_error(self, event) -> None:
        if event.obj.status == "error" and event.new:
            notify(event.new)

    # -- layout -----------------------------------------------------------------------------------------
    def controls(self) -> pn.Column:
        # the buttons first: on a projector or a 1024 x 768 screen they stay in view without scrolling
        return pn.Column(
            pn.Row(self.start_button, self.stop_button, self.reset_button),
            pn.Row(self.pause_button, self.step_button),
            self.demo_button,
            self.settings.widgets(),
        )

    def status_line(self) -> pn.pane.Markdown:
        s = self.session.param
        text = pn.bind(
            _status_text,
            s.status,
            s.step,
            s.episodes,
            s.steps_per_second,
            s.recent_success,
            s.recent_return,
            s.message,
            s.total_steps,
            s.member_steps_per_second,
        )
        return pn.pane.Markdown(text, css_classes=["status-line"])

    def main(self) -> pn.Tabs:
        train_view = pn.Column(
            pn.pane.Markdown(INTRO),
            pn.Row(self.status_line(), pn.layout.HSpacer(), self.clear_runs_button, sizing_mode="stretch_width"),
            self._curves,
            self._empty_note,
            # rows of their own: beside the square eigenvalue plot the others were crushed on a 1024 px screen
            self._diagnostics,
            sizing_mode="stretch_width",
        )
        self._tabs = pn.Tabs(
            ("Train", train_view),
            ("Sweep chain lengths", self.sweep),
            ("Classroom demo", pn.Column(self.demo, pn.layout.Divider(), self.paper_demo, sizing_mode="stretch_width")),
            ("Paper results", self._paper_results),
            dynamic=True,  # a tab's plots are built when it is first shown: a page opens in half the time
            sizing_mode="stretch_width",
        )
        self._tabs.param.watch(self._open_paper_results, "active")
        return self._tabs

    def _open_paper_results(self, event) -> None:
        """Build the Paper results tab when first opened (reading results/ costs every other page nothing)."""
        if event.new == PAPER_RESULTS_TAB and not self._paper_results.objects:
            self._paper_results.objects = [PaperResults()]

    def share_settings(self) -> None:
        """Keep every setting of the Train tab in the page's URL query, so the address is a link that opens the lab
        with these settings; take the settings of the link the page was opened with, saying what was corrected."""
        location = pn.state.location
        if location is None:
            return
        messages = self.settings.apply_query(location.query_params)
        location.sync(self.settings, SHARED)

        def loaded() -> None:  # the whole query written once the page is there (sync writes only what changes)
            location.update_query(**{name: self.settings.query_value(name) for name in SHARED})
            for message in messages:
                notify(message, "warning")

        pn.state.onload(loaded)

    def template(self) -> pn.template.FastListTemplate:
        self.share_settings()
        return pn.template.FastListTemplate(
            title="rtu-lab · streaming RL with exact RTRL",
            sidebar=[self.controls()],
            main=[self.main()],
            sidebar_width=290,
        )

    def __panel__(self):
        return pn.Row(self.controls(), self.main(), sizing_mode="stretch_width")
