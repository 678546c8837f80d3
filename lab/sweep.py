"""Chain-length sweep view: several chain lengths x methods trained at once, success rate filling in live.

Each method is ONE population whose members are the chosen chain lengths x seeds (rtu_core's
mixed-member populations); all methods' populations interleave in the session's one training process.
"""

from __future__ import annotations

from collections import defaultdict, deque

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from holoviews.streams import Pipe

from rtu_core import ConfigError, EpisodeEnd
from rtu_core.config import METHOD_LABELS, METHODS

from .controls import LabSettings, member_configs
from .plots import METHOD_COLOURS
from .session import TrainingSession, notify

RECENT = 50  # episodes per member behind a point of the curve
COLUMNS = ["method", "chain_length", "success", "members"]
CHAIN_LENGTHS = [2, 4, 8, 16, 32, 64, 128]


class SweepView(pn.viewable.Viewer):
    """The sweep tab: chain lengths x methods trained at once (one population per method), success vs L live."""

    chain_lengths = param.ListSelector(default=[2, 4, 8, 16, 32], objects=CHAIN_LENGTHS)
    methods = param.ListSelector(default=list(METHODS), objects=list(METHODS))
    seeds = param.Integer(default=2, bounds=(1, 10), doc="Seeds per chain length")
    steps = param.Integer(default=30_000, bounds=(100, 5_000_000), doc="Steps per member")

    def __init__(self, settings: LabSettings, on_start=lambda: None, **params):
        super().__init__(**params)
        self.settings = settings
        self.session = TrainingSession()
        self._on_start = on_start
        self._members: list[list] = []  # per job (method): its member configs
        self._methods: list[str] = []  # per job: the method name
        self._recent: dict[tuple[int, int], deque] = defaultdict(lambda: deque(maxlen=RECENT))
        self.pipe = Pipe(data=pd.DataFrame(columns=COLUMNS))
        self.plot = hv.DynamicMap(self._draw, streams=[self.pipe])
        self.start_button = pn.widgets.Button(name="Start sweep", button_type="primary")
        self.stop_button = pn.widgets.Button(name="Stop sweep")
        self.reset_button = pn.widgets.Button(name="Reset sweep")
        self.start_button.on_click(lambda _: self._start_clicked())
        self.stop_button.on_click(lambda _: self.session.stop(wait=False))
        self.reset_button.on_click(lambda _: self.reset())

    def jobs(self) -> list[list]:
        """One population per chosen method: its members are the chain lengths x seeds."""
        jobs = []
        for method in self.methods:
            cell, mode = METHODS[method]
            base = self.settings.config(
                cell=cell, mode=mode, steps=self.steps, eval_episodes=0, snapshot_every=0, staleness_every=0
            )
            jobs.append(member_configs(base, sorted(self.chain_lengths), self.seeds))
        return jobs

    def start(self) -> None:
        if not self.methods or not self.chain_lengths:
            raise ConfigError("choose at least one method and one chain length")
        if self.settings.agent == "ppo" or self.settings.task not in ("memory_chain", "kmemory_chain"):
            raise ConfigError(
                "the sweep tab runs streaming agents on (K)MemoryChain; sweep other settings with "
                "python -m rtu_core sweep"
            )
        jobs = self.jobs()
        self.clear()
        self._members = jobs
        self._methods = list(self.methods)
        self.session.start(jobs)

    def _start_clicked(self) -> None:
        try:
            self.start()
        except (ConfigError, RuntimeError) as error:
            notify(str(error))
            return
        self._on_start()

    def reset(self) -> None:
        self.session.reset()
        self.clear()

    def clear(self) -> None:
        self._recent.clear()
        self.pipe.send(pd.DataFrame(columns=COLUMNS))

    def update(self, items) -> None:
        changed = False
        for job, event in items:
            if isinstance(event, EpisodeEnd) and event.success is not None:
                self._recent[(job, event.member)].append(event.success)
                changed = True
        if changed:
            self.pipe.send(self.frame())

    def frame(self) -> pd.DataFrame:
        """Mean recent success over seeds, per method and chain length."""
        cells = defaultdict(list)
        for (job, member), successes in self._recent.items():
            config = self._members[job][member]
            cells[(self._methods[job], config.chain_length)].append(np.mean(successes))
        rows = [(METHOD_LABELS[m], L, float(np.mean(v)), len(v)) for (m, L), v in sorted(cells.items())]
        return pd.DataFrame(rows, columns=COLUMNS)

    @staticmethod
    def _draw(data):
        """The same elements every frame (one curve and its points per method), so updates stream in place."""
        layers = []
        for method, label in METHOD_LABELS.items():
            group = data[data["method"] == label] if len(data) else pd.DataFrame(columns=COLUMNS)
            colour = METHOD_COLOURS[method]
            layers += [
                hv.Curve(group, "chain_length", "success", label=label).opts(color=colour),
                hv.Scatter(group, "chain_length", ["success", "members"], label=label).opts(
                    color=colour, size=7, tools=["hover"]
                ),
            ]
        layers.append(hv.HLine(0.5).opts(color="grey", line_dash="dashed", line_width=1))
        return hv.Overlay(layers).opts(
            title=f"Success rate (last {RECENT} episodes, mean over seeds) vs chain length",
            logx=True,
            ylim=(-0.05, 1.05),
            xlim=(1.5, 160),
            xticks=[(L, str(L)) for L in CHAIN_LENGTHS],
            xlabel="chain length L",
            ylabel="success rate",
            height=420,
            responsive=True,
            show_grid=True,
            legend_position="bottom_left",
        )

    def __panel__(self):
        controls = pn.Param(
            self,
            parameters=["chain_lengths", "methods", "seeds", "steps"],
            show_name=False,
            widgets={
                "chain_lengths": {
                    "type": pn.widgets.CheckButtonGroup,
                    "button_type": "primary",
                    "button_style": "outline",
                },
                "methods": pn.widgets.CheckBoxGroup,
                "steps": {"type": pn.widgets.IntInput, "step": 10_000},
            },
        )
        status = pn.bind(
            lambda status, step, sps: f"**Sweep:** {status} · step {step:,} per member · {sps:,.0f} agent-steps/s",
            self.session.param.status,
            self.session.param.step,
            self.session.param.steps_per_second,
        )
        return pn.Column(
            pn.pane.Markdown(
                "Train every chosen chain length and method at once: each method is one population "
                "of chain lengths x seeds, so the whole sweep runs in one process. Agent, sizes and step "
                "sizes come from the settings on the left."
            ),
            pn.Row(
                controls,
                pn.Column(
                    pn.Row(self.start_button, self.stop_button, self.reset_button),
                    pn.pane.Markdown(status, css_classes=["sweep-status"]),
                ),
            ),
            pn.pane.HoloViews(self.plot, sizing_mode="stretch_width", linked_axes=False),
            sizing_mode="stretch_width",
        )
