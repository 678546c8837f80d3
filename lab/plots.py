"""Live plots of a training run, each a HoloViews DynamicMap fed by a ``Buffer`` or ``Pipe`` stream.

``update(events)`` is called on the UI thread with the events drained from the session; buffers send
only the new rows to the browser (Bokeh ``stream``), so plots are extended, not redrawn.
"""

from __future__ import annotations

import dataclasses

import holoviews as hv
import numpy as np
import pandas as pd
from holoviews.streams import Buffer, Pipe

from rtu_core import EpisodeEnd, Snapshot, Staleness

from .memory import read_out

SMOOTHING = 0.05  # exponential moving average over episodes (bias-corrected: early values are plain means)
MAX_UNITS = 6  # RTU units drawn in the complex plane (the most active ones)
EPISODES_SHOWN = 8  # recent episodes in the hidden-state plot
READOUT_EPISODES = 40  # recent episodes the memory read-out holds out one by one (the snapshot window's length)
CUE_COLOURS = {"remember 0": "#1f77b4", "remember 1": "#d62728"}
# one colour per method on every tab (the training curves, the sweep, the demo, the paper's results)
METHOD_COLOURS = {"rtu-rtrl": "#d62728", "rtu-tbptt": "#ff7f0e", "gru-tbptt": "#1f77b4", "ffn-tbptt": "#7f7f7f"}
STEP_LABEL = "environment steps"
AXES = ("hidden_x", "hidden_y")
HEIGHT = 280
OVER_STEPS = dict(height=HEIGHT, responsive=True, xlabel=STEP_LABEL, show_grid=True)  # the plots over training

if "bokeh" not in hv.Store.renderers or not hasattr(hv.opts, "Points"):
    hv.extension("bokeh", logo=False)  # the options below are declared for the Bokeh backend
# The mouse wheel scrolls the page, not the plot under it (a lecture scrolls past plots all the time): the wheel
# zoom stays in each plot's toolbar, off until chosen.
hv.opts.defaults(
    *(getattr(hv.opts, element)(active_tools=["pan"]) for element in ("Curve", "Scatter", "Points", "Path", "Overlay"))
)
# Plots draw on a 2D canvas, not WebGL (HoloViews' default): they hold hundreds of points, not the many thousands
# WebGL pays off for, and where a browser has no GPU acceleration (a classroom's PCs, a server's own cores) WebGL is
# drawn in software. Measured in headless Chromium: a training page costs 0.22 cores instead of 0.41.
hv.renderer("bokeh").webgl = False


class RunningAverage:
    """Exponential moving average m ← m + α (x - m) from m = 0, read bias-corrected as m / (1 - (1 - α)^n): the
    first values are plain means, so one early failure does not drag the curve below chance for many episodes."""

    def __init__(self, rate: float = SMOOTHING):
        self.rate = rate
        self.mean = 0.0
        self.count = 0

    def add(self, value: float) -> float:
        self.count += 1
        self.mean += self.rate * (value - self.mean)
        return self.value

    @property
    def value(self) -> float:
        return self.mean / (1 - (1 - self.rate) ** self.count) if self.count else np.nan


# settings left out of a compared run's label (they change what is recorded, not what is learned)
UNLABELLED = {"progress_every", "snapshot_every", "snapshot_window", "staleness_every", "eval_episodes", "time_limit"}
PAST_RUNS = 5  # finished or stopped runs kept on the return and success plots
PAST_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def run_labels(configs: list) -> list[str]:
    """A short label per run naming only the settings in which the runs differ (``cell=gru mode=tbptt``), or
    ``run 1``, ``run 2``, … where they differ in none."""
    names = [f.name for f in dataclasses.fields(configs[0]) if f.name not in UNLABELLED]
    differ = [n for n in names if len({repr(getattr(c, n)) for c in configs}) > 1]
    if not differ:
        return [f"run {i + 1}" for i in range(len(configs))]
    short = {"chain_length": "L", "hidden_size": "units", "trace_decay": "λ", "lr": "α", "lr_q": "α_Q"}
    return [" ".join(f"{short.get(n, n)}={getattr(c, n):g}" if isinstance(getattr(c, n), float)
                     else f"{short.get(n, n)}={getattr(c, n)}" for n in differ) for c in configs]  # fmt: skip


def one_path(pieces: list[np.ndarray]) -> list[np.ndarray]:
    """Trajectories (each (length, 2)) as one path broken by NaN rows: Bokeh draws it as many lines, and HoloViews
    builds one path instead of hundreds (a refresh took 0.4 s longer); no trajectory, no path."""
    joined = [part for piece in pieces for part in (piece, np.full((1, piece.shape[1]), np.nan))]
    return [np.concatenate(joined)] if joined else []


def readout_window(chain_length: int) -> int:
    """The snapshot window that holds ``READOUT_EPISODES`` episodes of a chain (within 64-1024 states)."""
    return min(max(READOUT_EPISODES * (chain_length + 1), 64), 1024)


class LearningCurves:
    """Episodic return and success rate vs step (raw and smoothed), over the last ``PAST_RUNS`` finished or stopped
    runs' running averages, each labelled with the settings in which the runs differ."""

    COLUMNS = ["step", "ret", "ret_smooth", "success", "success_smooth"]
    PAST = ["run", "step", "ret_smooth", "success_smooth"]

    def __init__(self, length: int = 20_000):
        self.buffer = Buffer(
            pd.DataFrame({c: pd.Series(dtype=float) for c in self.COLUMNS}), length=length, index=False
        )
        self._ret, self._success = RunningAverage(), RunningAverage()
        self.config = None  # the current run's
        self.past: list[tuple[object, pd.DataFrame]] = []  # (config, its running averages) of earlier runs
        self.past_pipe = Pipe(data=(pd.DataFrame(columns=self.PAST), []))
        # the current run (a Buffer: new rows are streamed to the browser) times the compared runs (a Pipe, sent
        # when a run starts or the runs are cleared); the overlay's options are the product's own (a DynamicMap's
        # inner overlay options do not survive the product)
        past_returns = hv.DynamicMap(lambda data: self._past(data, "ret_smooth"), streams=[self.past_pipe])
        past_successes = hv.DynamicMap(lambda data: self._past(data, "success_smooth"), streams=[self.past_pipe])
        self.returns = (hv.DynamicMap(self._returns, streams=[self.buffer]) * past_returns).opts(
            **OVER_STEPS,
            title="Return per episode (dashed: earlier runs)",
            legend_position="bottom_right",
            ylabel="return (sum of rewards)",
            framewise=True,
        )
        self.successes = (hv.DynamicMap(self._successes, streams=[self.buffer]) * past_successes).opts(
            **OVER_STEPS,
            title="Success, memory tasks (grey: chance)",  # short: whole on a 1024 px screen
            ylim=(-0.05, 1.05),
            ylabel="fraction right",
            legend_position="bottom_right",
            framewise=True,
        )

    def start_run(self, config) -> None:
        """A new run: the current one (if it has episodes) joins the compared runs, the plots start again."""
        data = self.buffer.data
        if self.config is not None and len(data):
            self.past = (self.past + [(self.config, data[self.PAST[1:]].copy())])[-PAST_RUNS:]
        self.config = config
        self.clear()
        self._send_past()

    def clear_runs(self) -> None:
        """Forget the compared runs."""
        self.past = []
        self._send_past()

    def _send_past(self) -> None:
        labels = run_labels([c for c, _ in self.past] + [self.config]) if self.past else []
        frames = [frame.assign(run=i) for i, (_, frame) in enumerate(self.past)]
        data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=self.PAST)
        self.past_pipe.send((data, labels))

    @staticmethod
    def _past(payload, column: str):
        """The compared runs' running averages: the same ``PAST_RUNS`` curves every frame (empty where fewer runs),
        each labelled in the plot at its last point (the current run is the legend's running average)."""
        data, labels = payload
        curves, texts = [], []
        for i in range(PAST_RUNS):
            run = data[data["run"] == i] if len(data) else pd.DataFrame(columns=["step", column])
            curves.append(hv.Curve(run, "step", column).opts(color=PAST_COLOURS[i], line_width=2, line_dash="dashed"))
            if len(run) and i < len(labels) - 1:
                texts.append((float(run["step"].iloc[-1]), float(run[column].iloc[-1]), labels[i]))
        text = hv.Labels(texts, ["step", column], "label").opts(
            text_font_size="9pt", text_align="right", text_baseline="bottom", text_color="#333"
        )
        return hv.Overlay([*curves, text])

    @staticmethod
    def _returns(data):
        raw = hv.Scatter(data, "step", "ret", label="one episode").opts(alpha=0.25, size=3, color="#7f7f7f")
        smooth = hv.Curve(data, "step", "ret_smooth", label="running average").opts(color="#d62728", line_width=2)
        return raw * smooth

    @staticmethod
    def _successes(data):
        """The memory tasks score each episode as a fraction right, chance 0.5; POPGym and MuJoCo have no success
        measure (the plot stays empty)."""
        raw = hv.Scatter(data, "step", "success", label="one episode").opts(alpha=0.15, size=3, color="#7f7f7f")
        smooth = hv.Curve(data, "step", "success_smooth", label="running average").opts(color="#2ca02c", line_width=2)
        return raw * smooth * hv.HLine(0.5).opts(color="grey", line_dash="dashed", line_width=1)

    def update(self, events) -> None:
        rows = []
        for event in events:
            if isinstance(event, EpisodeEnd):
                success = np.nan if event.success is None else float(event.success)
                ret = self._ret.add(event.episode_return)
                smooth_success = self._success.value if np.isnan(success) else self._success.add(success)
                rows.append((event.step, event.episode_return, ret, success, smooth_success))
        if rows:
            self.buffer.send(pd.DataFrame(rows, columns=self.COLUMNS))

    def clear(self) -> None:
        self._ret, self._success = RunningAverage(), RunningAverage()
        self.buffer.clear()


class MemoryPlot:
    """Is the bit held? Each recent episode's hidden state read out along the direction that tells the two
    remembered bits apart (``lab.memory``, held out), against the step within the episode: one line per episode,
    coloured by its bit. Held: the two colours part after the context step and stay apart until the query."""

    COLUMNS = ["t", "projection", "bit", "episode"]

    def __init__(self, network: str):
        self.network = network
        self.title = self.waiting_title()
        self.summary: tuple[float, float, int] | None = None  # accuracy, d′, episodes at the query step
        self.pipe = Pipe(data=pd.DataFrame(columns=self.COLUMNS))
        self.element = hv.DynamicMap(self._draw, streams=[self.pipe])

    def _draw(self, data):
        layers = []
        for bit, (label, colour) in enumerate(CUE_COLOURS.items()):
            episodes = data[data["bit"] == bit].groupby("episode")
            path = one_path([episode[["t", "projection"]].to_numpy(float) for _, episode in episodes])
            layers.append(
                hv.Path(path, kdims=["step_in_episode", "read_out"], label=label).opts(
                    color=colour, line_width=2, alpha=0.6, framewise=True
                )
            )
        running = data[data["episode"] == data["episode"].max()] if len(data) else data
        layers.append(
            hv.Path([running[["t", "projection"]].to_numpy(float)], kdims=["step_in_episode", "read_out"],
                    label="this episode").opts(color="black", line_width=3, framewise=True)
        )  # fmt: skip
        layers.append(hv.HLine(0).opts(color="grey", line_dash="dashed", line_width=1))
        return hv.Overlay(layers).opts(
            title=self.title,
            height=HEIGHT,
            responsive=True,
            show_grid=True,
            xlabel="step within the episode (0: the bit is shown)",
            ylabel="read-out (> 0: bit 1)",
            legend_position="top_left",
            framewise=True,
        )

    def waiting_title(self) -> str:
        return f"{self.network}: is the bit held? (waiting for episodes of both bits)"

    def update(self, snapshot: Snapshot) -> None:
        hidden = snapshot.hidden.get(self.network)
        if hidden is None or len(hidden) == 0:
            return
        readout = read_out(hidden, snapshot.episode_time, snapshot.cue)
        if readout.query_time < 0:
            self.summary = None
            self.title = self.waiting_title()
        else:
            self.summary = (readout.accuracy, readout.d_prime, readout.episodes)
            self.title = (
                f"{self.network}: is the bit held? Read out at step {readout.query_time}: "
                f"{readout.accuracy:.0%} right (chance 50%), d′ {readout.d_prime:.1f}, {readout.episodes} episodes"
            )
        frame = pd.DataFrame(
            {"t": readout.time, "projection": readout.projection, "bit": readout.bit, "episode": readout.episode}
        )
        self.pipe.send(frame)

    def clear(self) -> None:
        self.summary = None
        self.title = self.waiting_title()
        self.pipe.send(pd.DataFrame(columns=self.COLUMNS))


class HiddenStatePlot:
    """Recent hidden-state trajectories: each RTU unit's h_t in the complex plane (GRU: a 2-D PCA projection),
    coloured by the bit the episode asks to remember (by time within the episode on tasks without one): once the
    agent has learned, the two colours lie apart -- the memory made visible."""

    def __init__(self, network: str):
        self.network = network
        self.pipe = Pipe(data=self._empty())
        self.title, self.complex = "Hidden state", True
        self.element = hv.DynamicMap(self._draw, streams=[self.pipe])

    def _draw(self, data):
        # one trajectory per unit and episode (split where an episode starts)
        pieces = []
        for _, group in data.groupby("unit"):
            starts = np.flatnonzero(group["t"].to_numpy() == 0)
            pieces += [piece for piece in np.split(group[list(AXES)].to_numpy(), starts) if len(piece) > 1]
        segments = one_path(pieces)
        # Own dimension names keep these axes unlinked from other plots (shared_axes=False would freeze
        # the ranges); framewise on the overlay and its elements makes the axes follow each frame's data.
        axes = [
            hv.Dimension(name, label=label)
            for name, label in zip(AXES, ("Re h", "Im h") if self.complex else ("PC 1", "PC 2"))
        ]
        paths = hv.Path(segments, kdims=axes).opts(color="#cccccc", line_width=1, alpha=0.6, framewise=True)
        # the same layers every time (a DynamicMap keeps its first structure): the points of each remembered bit,
        # and, for tasks without one, the points coloured by time in the episode
        layers = [
            hv.Points(data[data["cue"] == bit], axes, ["t", "unit"], label=label).opts(
                color=colour, size=4, tools=["hover"], framewise=True
            )
            for bit, (label, colour) in enumerate(CUE_COLOURS.items())
        ]
        layers.append(
            hv.Points(data[data["cue"].isna()], axes, ["t", "unit"]).opts(
                color="t", cmap="viridis", size=4, tools=["hover"]
            )
        )
        return hv.Overlay([paths, *layers]).opts(
            title=self.title,
            height=HEIGHT,
            responsive=True,
            show_grid=True,
            framewise=True,
            legend_position="right",
        )

    def update(self, snapshot: Snapshot) -> None:
        hidden = snapshot.hidden.get(self.network)
        if hidden is None or len(hidden) == 0:
            return
        t, cue = snapshot.episode_time, snapshot.cue
        starts = np.flatnonzero(t == 0)
        if len(starts) > EPISODES_SHOWN:  # the last few episodes only: trajectories stay readable
            keep = slice(starts[-EPISODES_SHOWN], None)
            hidden, t, cue = hidden[keep], t[keep], cue[keep]
        both_bits = len(np.unique(cue[np.isfinite(cue)])) == 2
        if both_bits:  # what differs between episodes at the same step is what the memory holds
            hidden = hidden - np.stack([hidden[t == step].mean(0) for step in t])
        if np.iscomplexobj(hidden):
            units = self._telling_units(hidden, cue)
            frames = [
                pd.DataFrame(
                    {AXES[0]: hidden[:, k].real, AXES[1]: hidden[:, k].imag, "t": t, "unit": int(k), "cue": cue}
                )
                for k in units
            ]
            self.title = (
                f"{self.network}: RTU h_t minus its average at that step ({len(units)} units that tell the bits apart)"
                if both_bits
                else f"{self.network}: RTU h_t in the complex plane ({len(units)} most active units)"
            )
            self.complex = True
        else:
            centred = hidden - hidden.mean(0)
            if hidden.shape[1] >= 2 and np.any(centred):
                _, _, vt = np.linalg.svd(centred, full_matrices=False)
                xy = centred @ vt[:2].T
            else:
                xy = np.zeros((len(hidden), 2))
            frames = [pd.DataFrame({AXES[0]: xy[:, 0], AXES[1]: xy[:, 1], "t": t, "unit": 0, "cue": cue})]
            self.title = f"{self.network}: hidden state, first two principal components"
            self.complex = False
        self.pipe.send(pd.concat(frames, ignore_index=True))

    @staticmethod
    def _telling_units(hidden: np.ndarray, cue: np.ndarray) -> np.ndarray:
        """The MAX_UNITS units to draw: those whose h_t differs most between the two remembered bits (distance of
        the two means over the spread), or the most active ones where there is no bit or only one was seen."""
        spread = hidden.real.var(0) + hidden.imag.var(0)
        score = spread
        if len(np.unique(cue[np.isfinite(cue)])) == 2:
            score = np.abs(hidden[cue == 1].mean(0) - hidden[cue == 0].mean(0)) / np.sqrt(spread + 1e-12)
        return np.argsort(score)[::-1][:MAX_UNITS]

    @staticmethod
    def _empty() -> pd.DataFrame:
        return pd.DataFrame({AXES[0]: [], AXES[1]: [], "t": [], "unit": [], "cue": []})

    def clear(self) -> None:
        self.pipe.send(self._empty())


class TraceMagnitudes:
    """‖S^p‖₂ of the RTRL sensitivities per parameter group (RTU in RTRL mode), and ‖z‖₁ of each network's
    eligibility trace."""

    COLUMNS = ["step", "S_nu", "S_theta", "S_B_real", "S_B_imag", "z_1", "z_2"]
    GROUPS = {"nu_log": "S_nu", "theta_log": "S_theta", "B_real": "S_B_real", "B_imag": "S_B_imag"}
    LABELS = {
        "S_nu": "∂h/∂ν (decay r)",
        "S_theta": "∂h/∂θ (rotation)",
        "S_B_real": "∂h/∂B (input, real)",
        "S_B_imag": "∂h/∂B (input, imaginary)",
    }

    def __init__(self, network: str, length: int = 5_000):
        self.network = network
        self.trace_labels = ["trace z, actor", "trace z, critic"]
        self.buffer = Buffer(
            pd.DataFrame({c: pd.Series(dtype=float) for c in self.COLUMNS}), length=length, index=False
        )
        self.element = hv.DynamicMap(self._draw, streams=[self.buffer]).opts(hv.opts.Curve(framewise=True))

    def _draw(self, data):
        labels = {**self.LABELS, "z_1": self.trace_labels[0], "z_2": self.trace_labels[1]}
        curves = [
            hv.Curve(data, "step", column, label=labels[column]).redim(**{column: "norm"})
            for column in self.COLUMNS[1:]
        ]
        return hv.Overlay(curves).opts(
            **OVER_STEPS,
            title="What learning carries forward: RTRL sensitivities ‖∂h/∂p‖₂ and eligibility traces ‖z‖₁",
            logy=True,
            legend_position="left",
            ylabel="size (log scale)",
        )

    def set_networks(self, names: list[str]) -> None:
        """Label the two eligibility traces by the agent's networks (actor/critic, or q/h)."""
        self.trace_labels = [f"trace z, {name}" for name in (list(names) + ["", ""])[:2]]

    def update_many(self, snapshots: list[Snapshot]) -> None:
        """One row per snapshot, sent to the browser at once."""
        self.buffer.send(pd.DataFrame([self._row(s) for s in snapshots], columns=self.COLUMNS))

    def _row(self, snapshot: Snapshot) -> dict:
        row = {c: np.nan for c in self.COLUMNS}
        row["step"] = snapshot.step
        positive = lambda v: float(v) if v > 0 else np.nan  # noqa: E731  (zero right after a reset: a gap)
        for group, values in snapshot.sensitivity_norms.get(self.network, {}).items():
            row[self.GROUPS[group]] = positive(values[0])
        for column, values in zip(("z_1", "z_2"), snapshot.trace_norms.values()):
            row[column] = positive(values[0])
        return row

    def clear(self) -> None:
        self.buffer.clear()


class StalenessPlot:
    """RTRL staleness over training (paper §4.4, docs/method.md §3): for each network, ‖S_online − S_replay‖ /
    ‖S_replay‖, S_replay being the running episode replayed under the current parameters; one dot per measure and a
    running average (of log10) per network, on a log scale. A measure right at an episode's start has nothing to
    compare (NaN): no dot."""

    COLUMNS = ["step", "first", "first_smooth", "second", "second_smooth"]

    def __init__(self, length: int = 5_000):
        self.labels = ["actor", "critic"]
        self.buffer = Buffer(
            pd.DataFrame({c: pd.Series(dtype=float) for c in self.COLUMNS}), length=length, index=False
        )
        self._averages = [RunningAverage(), RunningAverage()]
        self.corrected = False
        self.element = hv.DynamicMap(self._draw, streams=[self.buffer])

    def _draw(self, data):
        layers = []
        for column, label, colour in zip(("first", "second"), self.labels, ("#1f77b4", "#ff7f0e")):
            layers.append(
                hv.Scatter(data, "step", column, label=f"{label}, one measure")
                .redim(**{column: "staleness"})
                .opts(color=colour, alpha=0.25, size=3)
            )
            layers.append(
                hv.Curve(data, "step", f"{column}_smooth", label=f"{label}, running average")
                .redim(**{f"{column}_smooth": "staleness"})
                .opts(color=colour, line_width=2)
            )
        sensitivities = "S + C (Taylor-corrected)" if self.corrected else "S"
        return hv.Overlay(layers).opts(
            **OVER_STEPS,
            title=f"RTRL staleness of {sensitivities}: distance from the episode replayed under today's parameters",
            logy=True,
            legend_position="bottom_right",
            ylabel="relative error (log scale)",
            framewise=True,
        )

    def set_run(self, corrected: bool) -> None:
        """Say which sensitivities the run measures: S, or S + C with the Taylor correction."""
        self.corrected = corrected

    def update(self, events) -> None:
        """One row per ``Staleness`` event, its curves labelled by the event's networks (actor/critic, or q/h)."""
        rows = []
        for event in events:
            if isinstance(event, Staleness):
                self.labels = (list(event.errors) + ["", ""])[:2]
                row = [event.step]
                for values, average in zip(list(event.errors.values())[:2], self._averages):
                    value = float(values[0])
                    ok = np.isfinite(value) and value > 0
                    row += [value if ok else np.nan, 10 ** average.add(np.log10(value)) if ok else np.nan]
                rows.append(row + [np.nan] * (len(self.COLUMNS) - len(row)))
        if rows:
            self.buffer.send(pd.DataFrame(rows, columns=self.COLUMNS))

    def clear(self) -> None:
        self._averages = [RunningAverage(), RunningAverage()]
        self.buffer.clear()


class EigenvaluePlot:
    """RTU eigenvalues λ_k = r_k e^{iθ_k} on the unit disc; hover shows r, θ (degrees) and the horizon 1/(1 - r) in
    steps."""

    def __init__(self, network: str):
        self.network = network
        self.pipe = Pipe(data=self._frame(np.zeros(0, complex)))
        self.element = hv.DynamicMap(self._draw, streams=[self.pipe])

    @staticmethod
    def _frame(lam: np.ndarray) -> pd.DataFrame:
        r = np.abs(lam)
        horizon = 1.0 / np.maximum(1.0 - r, 1e-12)
        return pd.DataFrame(
            {
                "re": lam.real,
                "im": lam.imag,
                "r": r,
                "theta_degrees": np.degrees(np.angle(lam)),
                "horizon_steps": horizon,
                "log10_horizon": np.log10(horizon),
            }
        )

    def _draw(self, data):
        circle = hv.Ellipse(0, 0, 2).opts(color="grey", line_width=1)
        points = hv.Points(data, ["re", "im"], ["r", "theta_degrees", "horizon_steps", "log10_horizon"]).opts(
            color="log10_horizon",
            cmap="plasma",
            size=7,
            colorbar=True,
            clabel="memory horizon 1/(1-r), steps (log10)",
            tools=["hover"],
            xlabel="Re λ",
            ylabel="Im λ",
        )
        return (circle * points).opts(
            title=f"{self.network}: eigenvalues λ = r e^(iθ)",  # the network of this run (actor, or QRC's q)
            frame_width=HEIGHT - 40,
            frame_height=HEIGHT - 40,
            xlim=(-1.1, 1.1),
            ylim=(-1.1, 1.1),
            show_grid=True,
            shared_axes=False,
        )

    def update(self, snapshot: Snapshot) -> None:
        lam = snapshot.eigenvalues.get(self.network)
        if lam is not None:
            self.pipe.send(self._frame(lam[0]))

    def clear(self) -> None:
        self.pipe.send(self._frame(np.zeros(0, complex)))
