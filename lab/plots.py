"""Live plots of a training run, each a HoloViews DynamicMap fed by a ``Buffer`` or ``Pipe`` stream.

``update(events)`` is called on the UI thread with the events drained from the session; buffers send
only the new rows to the browser (Bokeh ``stream``), so plots are extended, not redrawn.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
from holoviews.streams import Buffer, Pipe

from rtu_core import EpisodeEnd, Snapshot

SMOOTHING = 0.05  # exponential moving average over episodes
MAX_UNITS = 6  # RTU units drawn in the complex plane (the most active ones)
EPISODES_SHOWN = 4  # recent episodes in the hidden-state plot
AXES = ("hidden_x", "hidden_y")
HEIGHT = 280

if "bokeh" not in hv.Store.renderers or not hasattr(hv.opts, "Points"):
    hv.extension("bokeh", logo=False)  # the options below are declared for the Bokeh backend


def _ema(previous: float | None, value: float) -> float:
    return value if previous is None or np.isnan(previous) else previous + SMOOTHING * (value - previous)


class LearningCurves:
    """Episodic return and success rate vs step (raw and smoothed)."""

    COLUMNS = ["step", "ret", "ret_smooth", "success", "success_smooth"]

    def __init__(self, length: int = 20_000):
        self.buffer = Buffer(
            pd.DataFrame({c: pd.Series(dtype=float) for c in self.COLUMNS}), length=length, index=False
        )
        self._ret, self._success = None, None
        self.returns = hv.DynamicMap(self._returns, streams=[self.buffer])
        self.successes = hv.DynamicMap(self._successes, streams=[self.buffer])

    @staticmethod
    def _returns(data):
        raw = hv.Scatter(data, "step", "ret", label="episode return").opts(alpha=0.25, size=3, color="#7f7f7f")
        smooth = hv.Curve(data, "step", "ret_smooth", label="smoothed").opts(color="#d62728", line_width=2)
        return (raw * smooth).opts(
            title="Episodic return",
            height=HEIGHT,
            responsive=True,
            legend_position="bottom_right",
            ylabel="return",
            show_grid=True,
            framewise=True,
        )

    @staticmethod
    def _successes(data):
        raw = hv.Scatter(data, "step", "success", label="episode").opts(alpha=0.15, size=3, color="#7f7f7f")
        smooth = hv.Curve(data, "step", "success_smooth", label="success rate").opts(color="#2ca02c", line_width=2)
        overlay = raw * smooth
        # the memory tasks score each episode as a fraction right, chance 0.5; POPGym and MuJoCo have no success
        # measure: no chance line to mislead, and the title says why the plot stays empty
        if data["success"].notna().any():
            title = "Success rate (chance 0.5)"
            overlay = overlay * hv.HLine(0.5).opts(color="grey", line_dash="dashed", line_width=1)
        else:
            title = "Success rate (MemoryChain, KMemoryChain only)"
        return overlay.opts(
            title=title,
            height=HEIGHT,
            responsive=True,
            ylim=(-0.05, 1.05),
            ylabel="success",
            show_grid=True,
            legend_position="bottom_right",
            framewise=True,
        )

    def update(self, events) -> None:
        rows = []
        for event in events:
            if isinstance(event, EpisodeEnd):
                success = np.nan if event.success is None else float(event.success)
                self._ret = _ema(self._ret, event.episode_return)
                self._success = self._success if np.isnan(success) else _ema(self._success, success)
                rows.append(
                    (
                        event.step,
                        event.episode_return,
                        self._ret,
                        success,
                        np.nan if self._success is None else self._success,
                    )
                )
        if rows:
            self.buffer.send(pd.DataFrame(rows, columns=self.COLUMNS))

    def clear(self) -> None:
        self._ret, self._success = None, None
        self.buffer.clear()


class HiddenStatePlot:
    """Recent hidden-state trajectories: each RTU unit's h_t in the complex plane (GRU/FFN: a 2-D PCA
    projection), coloured by time within the episode -- the memory made visible."""

    def __init__(self, network: str):
        self.network = network
        self.pipe = Pipe(data=self._empty())
        self.title, self.complex = "Hidden state", True
        self.element = hv.DynamicMap(self._draw, streams=[self.pipe])

    def _draw(self, data):
        segments = []  # one path per unit and episode: trajectories break where an episode starts
        for _, group in data.groupby("unit"):
            starts = np.flatnonzero(group["t"].to_numpy() == 0)
            for piece in np.split(group[list(AXES)].to_numpy(), starts):
                if len(piece) > 1:
                    segments.append(piece)
        # Own dimension names keep these axes unlinked from other plots (shared_axes=False would freeze
        # the ranges); framewise on the overlay and its elements makes the axes follow each frame's data.
        axes = [
            hv.Dimension(name, label=label)
            for name, label in zip(AXES, ("Re h", "Im h") if self.complex else ("PC 1", "PC 2"))
        ]
        paths = hv.Path(segments, kdims=axes).opts(color="#bbbbbb", line_width=1, alpha=0.7, framewise=True)
        points = hv.Points(data, axes, ["t", "unit"]).opts(
            color="t", cmap="viridis", size=4, colorbar=True, clabel="time in episode", tools=["hover"], framewise=True
        )
        return (paths * points).opts(title=self.title, height=HEIGHT, responsive=True, show_grid=True, framewise=True)

    def update(self, snapshot: Snapshot) -> None:
        hidden = snapshot.hidden.get(self.network)
        if hidden is None or len(hidden) == 0:
            return
        t = snapshot.episode_time
        starts = np.flatnonzero(t == 0)
        if len(starts) > EPISODES_SHOWN:  # the last few episodes only: trajectories stay readable
            hidden, t = hidden[starts[-EPISODES_SHOWN] :], t[starts[-EPISODES_SHOWN] :]
        if np.iscomplexobj(hidden):
            activity = hidden.real.var(0) + hidden.imag.var(0)
            units = np.argsort(activity)[::-1][:MAX_UNITS]
            frames = [
                pd.DataFrame({AXES[0]: hidden[:, k].real, AXES[1]: hidden[:, k].imag, "t": t, "unit": int(k)})
                for k in units
            ]
            self.title = f"{self.network}: RTU h_t in the complex plane ({len(units)} most active units)"
            self.complex = True
        else:
            centred = hidden - hidden.mean(0)
            if hidden.shape[1] >= 2 and np.any(centred):
                _, _, vt = np.linalg.svd(centred, full_matrices=False)
                xy = centred @ vt[:2].T
            else:
                xy = np.zeros((len(hidden), 2))
            frames = [pd.DataFrame({AXES[0]: xy[:, 0], AXES[1]: xy[:, 1], "t": t, "unit": 0})]
            self.title = f"{self.network}: hidden state, first two principal components"
            self.complex = False
        self.pipe.send(pd.concat(frames, ignore_index=True))

    @staticmethod
    def _empty() -> pd.DataFrame:
        return pd.DataFrame({AXES[0]: [], AXES[1]: [], "t": [], "unit": []})

    def clear(self) -> None:
        self.pipe.send(self._empty())


class TraceMagnitudes:
    """‖S^p‖ of the RTRL sensitivities per parameter group, and ‖z‖₁ of the eligibility traces."""

    COLUMNS = ["step", "S ν_log", "S θ_log", "S B_real", "S B_imag", "z policy", "z value"]
    GROUPS = {"nu_log": "S ν_log", "theta_log": "S θ_log", "B_real": "S B_real", "B_imag": "S B_imag"}

    def __init__(self, network: str, length: int = 5_000):
        self.network = network
        self.buffer = Buffer(
            pd.DataFrame({c: pd.Series(dtype=float) for c in self.COLUMNS}), length=length, index=False
        )
        self.element = hv.DynamicMap(self._draw, streams=[self.buffer]).opts(hv.opts.Curve(framewise=True))

    def _draw(self, data):
        curves = [hv.Curve(data, "step", column, label=column).redim(**{column: "norm"}) for column in self.COLUMNS[1:]]
        return hv.Overlay(curves).opts(
            title="Trace magnitudes: RTRL sensitivities ‖S‖₂ and eligibility traces ‖z‖₁",
            height=HEIGHT,
            responsive=True,
            logy=True,
            legend_position="left",
            show_grid=True,
        )

    def update_many(self, snapshots: list[Snapshot]) -> None:
        """One row per snapshot, sent to the browser at once."""
        self.buffer.send(pd.DataFrame([self._row(s) for s in snapshots], columns=self.COLUMNS))

    def _row(self, snapshot: Snapshot) -> dict:
        row = {c: np.nan for c in self.COLUMNS}
        row["step"] = snapshot.step
        positive = lambda v: float(v) if v > 0 else np.nan  # noqa: E731  (zero right after a reset: a gap)
        for group, values in snapshot.sensitivity_norms.get(self.network, {}).items():
            row[self.GROUPS[group]] = positive(values[0])
        for column, values in zip(("z policy", "z value"), snapshot.trace_norms.values()):
            row[column] = positive(values[0])
        return row

    def clear(self) -> None:
        self.buffer.clear()


class EigenvaluePlot:
    """RTU eigenvalues λ_k = r_k e^{iθ_k} on the unit disc; hover shows r, θ and the horizon 1/(1 - r)."""

    def __init__(self, network: str):
        self.network = network
        self.pipe = Pipe(data=self._frame(np.zeros(0, complex)))
        circle = hv.Ellipse(0, 0, 2).opts(color="grey", line_width=1)
        self.element = (circle * hv.DynamicMap(self._draw, streams=[self.pipe])).opts(
            title=f"{network}: eigenvalues λ = r e^(iθ)",
            frame_width=HEIGHT - 40,
            frame_height=HEIGHT - 40,
            xlim=(-1.1, 1.1),
            ylim=(-1.1, 1.1),
            show_grid=True,
            shared_axes=False,
        )

    @staticmethod
    def _frame(lam: np.ndarray) -> pd.DataFrame:
        r = np.abs(lam)
        horizon = 1.0 / np.maximum(1.0 - r, 1e-12)
        return pd.DataFrame(
            {
                "re": lam.real,
                "im": lam.imag,
                "r": r,
                "theta": np.angle(lam),
                "horizon": horizon,
                "log10_horizon": np.log10(horizon),
            }
        )

    @staticmethod
    def _draw(data):
        return hv.Points(data, ["re", "im"], ["r", "theta", "horizon", "log10_horizon"]).opts(
            color="log10_horizon",
            cmap="plasma",
            size=7,
            colorbar=True,
            clabel="log10 memory horizon 1/(1-r)",
            tools=["hover"],
            xlabel="Re λ",
            ylabel="Im λ",
        )

    def update(self, snapshot: Snapshot) -> None:
        lam = snapshot.eigenvalues.get(self.network)
        if lam is not None:
            self.pipe.send(self._frame(lam[0]))

    def clear(self) -> None:
        self.pipe.send(self._frame(np.zeros(0, complex)))
