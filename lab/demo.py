"""The classroom demo: one click trains the four memory methods side by side on one MemoryChain, in about two
minutes on a laptop core, and shows their success curves together and the RTU's memory holding the bit apart.

Settings (``DEMO``) were chosen over five seeds, not by a lucky seed: ``benchmarks/memory_chain.py --agent stream_ac
--hidden-size 32 --width 32 --steps 20000 --lengths 8 16 32 --seeds 5``; what that run showed is in docs/lab.md
("Classroom demo").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import holoviews as hv
import pandas as pd
import panel as pn
from holoviews.streams import Pipe

from rtu_core import EpisodeEnd, Snapshot, TrainConfig
from rtu_core.config import METHOD_LABELS, METHODS

from .plots import METHOD_COLOURS, STEP_LABEL, MemoryPlot, RunningAverage, readout_window
from .session import TrainingSession

DEMO = dict(
    env="memory_chain",
    chain_length=8,
    agent="stream_ac",
    hidden_size=32,
    width=32,
    steps=20_000,
    eval_episodes=0,
    progress_every=20,
)
SEEDS = 3  # per method: the curves are their mean
SNAPSHOT_EVERY = 40
POINTS_EVERY = 10  # episodes of a method between the points of its curve
SMOOTHING = 0.02  # running average over about the last 50 episodes of the method's seeds
INTRO = """### Classroom demo: which agents can remember?
One click trains four agents side by side on the same MemoryChain (remember a bit for **8 steps**), three seeds
each, about two minutes: an RTU trained by **exact RTRL**, the same RTU trained by **TBPTT(1)** (a one-step
gradient), a **GRU** trained by TBPTT(1), and an **FFN** with no memory at all. Watch the success curves part:
the FFN and the GRU stay at chance (0.5), the RTU with TBPTT(1) learns slowly, the RTU with RTRL learns first.
Below, the RTRL agent's memory read out step by step: the two colours are the two bits to remember, held apart."""

# The paper's agent and network (QRC(λ), RTU 192, feature width 128, the paper's MemoryChain presets) on a chain long
# enough for the paper's separation: at L = 16 after 60k steps RTRL has learned and the GRU with TBPTT(1) and the
# FFN have not (five seeds measured: docs/lab.md, "The demos, measured"). About 4 minutes on one core.
PAPER_DEMO = dict(
    env="memory_chain",
    chain_length=16,
    agent="qrc",
    hidden_size=192,
    steps=60_000,
    eval_episodes=0,
    progress_every=50,
)
PAPER_INTRO = """### The paper's network: RTU 192 units, QRC(λ), L = 16
The paper's agent at the paper's size (QRC(λ), 192 complex units, feature width 128) on a chain of **16 steps**,
three seeds per method, about four minutes. RTRL learns to remember; the GRU trained by TBPTT(1) and the FFN stay
at chance, and so, on most seeds, does the same RTU trained by TBPTT(1) (one seed in five learned it)."""


@dataclass(frozen=True)
class DemoSpec:
    """One demo: its name on the page, the settings every method shares, seeds per method and its text."""

    name: str
    settings: dict
    intro: str
    seeds: int = SEEDS


QUICK = DemoSpec("demo", DEMO, INTRO)
PAPER = DemoSpec("paper-size demo", PAPER_DEMO, PAPER_INTRO)


def demo_jobs(seed: int = 0, spec: DemoSpec = QUICK) -> list[list[TrainConfig]]:
    """One population per method (its members: ``spec.seeds`` seeds); the RTU-RTRL population also takes snapshots
    of its first member's hidden state."""
    jobs = []
    for method, (cell, mode) in METHODS.items():
        base = TrainConfig(
            **spec.settings,
            cell=cell,
            mode=mode,
            seed=seed,
            snapshot_every=SNAPSHOT_EVERY if method == "rtu-rtrl" else 0,
            snapshot_window=readout_window(spec.settings["chain_length"]),
        )
        jobs.append([dataclasses.replace(base, seed=seed + s) for s in range(spec.seeds)])
    return jobs


class ClassroomDemo(pn.viewable.Viewer):
    """The demo tab: its own session, the four methods' success curves, the RTU-RTRL agent's hidden state."""

    def __init__(self, on_start=lambda: None, spec: DemoSpec = QUICK, **params):
        super().__init__(**params)
        self.spec = spec
        self.session, self._on_start = TrainingSession(), on_start
        self.methods = list(METHODS)
        self.memory = MemoryPlot("q" if spec.settings["agent"] == "qrc" else "actor")
        self.pipe = Pipe(data=self._empty())
        self.curves = hv.DynamicMap(self._draw, streams=[self.pipe])
        self.start_button = pn.widgets.Button(name=f"Start the {spec.name}", button_type="primary")
        self.reset_button = pn.widgets.Button(name=f"Reset the {spec.name}")
        self.start_button.on_click(lambda _: self.start())
        self.reset_button.on_click(lambda _: self.reset())
        self._clear_curves()

    def start(self) -> None:
        if self.session.running:
            return
        self.reset()
        self.session.start(demo_jobs(spec=self.spec))
        self._on_start()

    def reset(self) -> None:
        self.session.reset()
        self._clear_curves()
        self.memory.clear()

    def _clear_curves(self) -> None:
        self._averages = {m: RunningAverage(SMOOTHING) for m in self.methods}
        self._episodes = dict.fromkeys(self.methods, 0)
        self._rows: list[tuple[str, int, float]] = []
        self.pipe.send(self._empty())

    def update(self, items) -> None:
        """Feed the drained ``(job, event)`` pairs (UI thread): curve points every ``POINTS_EVERY`` episodes of a
        method (its seeds pooled), and the newest snapshot into the hidden-state plot."""
        snapshot, grew = None, False
        for job, event in items:
            method = self.methods[job]
            if isinstance(event, EpisodeEnd) and event.success is not None:
                value = self._averages[method].add(event.success)
                self._episodes[method] += 1
                if self._episodes[method] % POINTS_EVERY == 0:
                    self._rows.append((METHOD_LABELS[method], event.step, value))
                    grew = True
            elif isinstance(event, Snapshot):
                snapshot = event
        if grew:
            self.pipe.send(pd.DataFrame(self._rows, columns=["method", "step", "success"]))
        if snapshot is not None:
            self.memory.update(snapshot)

    @staticmethod
    def _empty() -> pd.DataFrame:
        return pd.DataFrame({"method": pd.Series(dtype=str), "step": [], "success": []})

    def _draw(self, data):
        """One curve per method (the same layers every frame), and the chance line."""
        layers = [
            hv.Curve(data[data["method"] == METHOD_LABELS[m]], "step", "success", label=METHOD_LABELS[m]).opts(
                color=METHOD_COLOURS[m], line_width=3
            )
            for m in self.methods
        ]
        layers.append(hv.HLine(0.5).opts(color="grey", line_dash="dashed", line_width=1))
        return hv.Overlay(layers).opts(
            title=f"Success on MemoryChain L = {self.spec.settings['chain_length']} "
            f"(running average over {self.spec.seeds} seeds)",
            height=360,
            responsive=True,
            ylim=(0.3, 1.02),
            xlim=(0, self.spec.settings["steps"]),
            xlabel=STEP_LABEL,
            ylabel="fraction answered right",
            show_grid=True,
            legend_position="top_left",
            framewise=False,
        )

    def __panel__(self):
        steps, name = self.spec.settings["steps"], self.spec.name.capitalize()
        status = pn.bind(
            lambda status, step: f"**{name}:** {status} · step {step:,} of {steps:,} per agent",
            self.session.param.status,
            self.session.param.step,
        )
        return pn.Column(
            pn.pane.Markdown(self.spec.intro),
            pn.Row(self.start_button, self.reset_button, pn.pane.Markdown(status, css_classes=["demo-status"])),
            pn.pane.HoloViews(self.curves, sizing_mode="stretch_width", linked_axes=False),
            pn.pane.HoloViews(self.memory.element, sizing_mode="stretch_width", linked_axes=False),
            pn.pane.Markdown(
                "The RTRL agent's memory: each line is one recent episode, its hidden state read out along the "
                "direction that best tells the two bits apart (found from the other episodes). Blue asks for bit 0, "
                "red for bit 1. Early on the colours mix; once the agent has learned they part when the bit is "
                "shown and stay apart until the question comes.",
                styles={"color": "#555"},
            ),
            sizing_mode="stretch_width",
        )
