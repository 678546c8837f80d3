"""The lab's run settings: a ``param.Parameterized`` whose widgets are derived from its params."""

from __future__ import annotations

import dataclasses
import json
import types

import panel as pn
import param

from rtu_core import TrainConfig
from rtu_core.config import FIELD_DEFAULTS, applies
from rtu_core.envs import MUJOCO_ROBOTS, POPGYM_TASKS
from rtu_core.presets import preset

from . import classroom
from .session import notify

TASKS = {
    "MemoryChain": "memory_chain",
    "KMemoryChain (recall k back)": "kmemory_chain",
    **{f"POPGym {task.removesuffix('Easy')} (easy)": f"popgym:{task}" for task in POPGYM_TASKS},
    **{f"MuJoCo {robot}": f"mujoco:{robot}" for robot in MUJOCO_ROBOTS},
}
MASKS = {"full": "F", "positions only": "P", "velocities only": "V"}
# The κ and λ widgets start at the paper's presets for the task and agent (rtu_core.presets); the rest of the
# network and learning settings the lab does not show come from the presets too. MuJoCo has a Gaussian policy
# (Stream AC only: QRC needs discrete actions) and a short greedy evaluation (episodes of 1000 steps).
AGENTS = {"Stream AC(λ)": "stream_ac", "QRC(λ)": "qrc", "PPO": "ppo"}
CELLS = {"RTU": "rtu", "GRU": "gru", "FFN": "ffn"}
MODES = {"RTRL": "rtrl", "TBPTT(1)": "tbptt"}
SIDEBAR_WIDGET_WIDTH = 250  # fits the page's 290 px sidebar
# the settings applied first from a shared link (the others are every setting: ``SHARED``, below the class)
QUERY_FIRST = ("task", "agent", "cell", "mode")
# settings typed as numbers (kind, step of the arrows); the rest are sliders, switches and choices
TYPED = {
    "lr": (pn.widgets.FloatInput, 0.1),
    "lr_q": (pn.widgets.FloatInput, 1e-5),
    "seed": (pn.widgets.IntInput, 1),
    "steps": (pn.widgets.IntInput, 10_000),
}
LAB_PROGRESS_EVERY = 20  # steps between progress events: keeps Stop prompt and the status line live
# staleness measures on the memory tasks, whose episodes are short (a measure replays the episode so far); elsewhere
# off until asked for: on MuJoCo's 1000-step episodes a measure every 50 steps would cost more than the training
STALENESS_EVERY = 50


class LabSettings(param.Parameterized):
    """The lab's run settings; ``config()`` turns them into a validated ``TrainConfig`` (presets fill the rest)."""

    task = param.Selector(default="memory_chain", objects=TASKS, label="Task", doc="Environment")
    mask = param.Selector(default="F", objects=MASKS, label="MuJoCo observation", doc="Masked MuJoCo: what is kept")
    chain_length = param.Integer(
        default=8,
        bounds=(2, 128),
        label="Chain length L (KMemoryChain: k)",
        doc="Steps between the context bit and the question (KMemoryChain: how far back)",
    )
    agent = param.Selector(default="stream_ac", objects=AGENTS, label="Agent", doc="Streaming agent")
    cell = param.Selector(default="rtu", objects=CELLS, label="Cell", doc="Recurrent cell")
    mode = param.Selector(default="rtrl", objects=MODES, label="Gradient", doc="RTRL is exact and only for the RTU")
    hidden_size = param.Integer(default=32, bounds=(1, 512), label="Hidden units", doc="RTU complex units / GRU units")
    width = param.Integer(default=32, bounds=(1, 512), label="Feature width", doc="Feature layer width")
    lr = param.Number(default=1.0, bounds=(1e-4, 10.0), label="ObGD step size α", doc="Stream AC(λ)")
    kappa_actor = param.Number(default=1.5, bounds=(0.1, 10.0), label="κ actor", doc="ObGD bound of the actor")
    kappa_critic = param.Number(default=1.0, bounds=(0.1, 10.0), label="κ critic", doc="ObGD bound of the critic")
    lr_q = param.Number(default=1e-4, bounds=(1e-6, 1e-1), label="QRC step size α_Q", doc="QRC(λ)")
    trace_decay = param.Number(default=0.8, bounds=(0.0, 1.0), label="Trace decay λ", doc="Eligibility trace λ")
    rtrl_refresh = param.Integer(
        default=0,
        bounds=(0, 1000),
        label="RTRL refresh every k steps",
        doc="0: standard (stale) RTRL; k: replay the episode under current parameters",
    )
    taylor_sensitivity = param.Boolean(
        default=False,
        label="Taylor-corrected RTRL",
        doc="Paper §4.4: carry a first-order correction C of the stale sensitivities; gradients use S + C",
    )
    staleness_every = param.Integer(
        default=STALENESS_EVERY,
        bounds=(0, 1000),
        label="Measure staleness every k steps",
        doc="0: off. How far the online RTRL sensitivities are from the episode replayed under today's parameters "
        "(each measure replays the episode so far: off by default on POPGym and MuJoCo, whose episodes are long)",
    )
    seed = param.Integer(default=0, bounds=(0, None), label="Seed")
    steps = param.Integer(default=50_000, bounds=(100, 5_000_000), label="Step budget")

    _rtu_mode = "rtrl"  # the gradient last chosen for the RTU: it comes back with the RTU

    def __init__(self, **params):
        super().__init__(**params)
        limits = classroom.LIMITS  # a teacher's limits narrow the bounds (and the values, where they lie beyond)
        for names, limit in ((("steps",), limits.max_steps), (("hidden_size", "width"), limits.max_hidden)):
            for name in names if limit is not None else ():
                low, high = self.param[name].bounds
                self.param[name].bounds = (low, max(low, min(high, limit)))
                setattr(self, name, min(getattr(self, name), self.param[name].bounds[1]))

    @param.depends("cell", watch=True, on_init=True)
    def _modes_for_cell(self):
        """RTRL is offered for the RTU only; going back to the RTU brings back its gradient (RTRL unless TBPTT(1)
        was chosen for it), so an RTU never trains with TBPTT(1) left over from a GRU or FFN."""
        if self.cell == "rtu":  # the options first: the value must be one of them
            self.param.mode.objects = MODES
            self.mode = self._rtu_mode
        else:
            # the value first, then the options: shrinking the options under a selected RTRL left the widget without
            # a value, which it sent back as None (rejected, restored, resent: a RecursionError per click)
            self.mode = "tbptt"
            self.param.mode.objects = {"TBPTT(1)": "tbptt"}
            self.param.trigger("mode")  # the button group marks its one button chosen (its index moved)

    @param.depends("mode", watch=True)
    def _remember_rtu_mode(self):
        if self.cell == "rtu":
            self._rtu_mode = self.mode

    @param.depends("task", watch=True)
    def _agents_for_task(self):
        mujoco = self.task.startswith("mujoco:")
        self.param.agent.objects = {k: v for k, v in AGENTS.items() if v != "qrc"} if mujoco else AGENTS
        if mujoco and self.agent == "qrc":
            self.agent = "stream_ac"
        elif not mujoco:
            self.mask = "F"

    @param.depends("task", watch=True)
    def _staleness_for_task(self):
        self.staleness_every = STALENESS_EVERY if self.task in ("memory_chain", "kmemory_chain") else 0

    @param.depends("task", "agent", watch=True, on_init=True)
    def _presets_for_task_and_agent(self):
        values = preset(self.task, self.agent)
        self.param.update(
            kappa_actor=values["kappa_actor"], kappa_critic=values["kappa_critic"], trace_decay=values["trace_decay"]
        )

    def config(self, **overrides) -> TrainConfig:
        """The TrainConfig these settings describe (validated)."""
        values = dict(
            env=self.task,
            chain_length=self.chain_length,
            agent=self.agent,
            cell=self.cell,
            mode=self.mode,
            hidden_size=self.hidden_size,
            width=self.width,
            lr=self.lr,
            kappa_actor=self.kappa_actor,
            kappa_critic=self.kappa_critic,
            lr_q=self.lr_q,
            trace_decay=self.trace_decay,
            seed=self.seed,
            steps=self.steps,
            mask=self.mask,
            progress_every=LAB_PROGRESS_EVERY,
            rtrl_refresh=self.rtrl_refresh,
            taylor_sensitivity=self.taylor_sensitivity,
            staleness_every=self.staleness_every,
        )
        if self.task.startswith("mujoco:"):
            values.update(eval_episodes=5)
        values.update(overrides)
        run = types.SimpleNamespace(**{k: values[k] for k in ("env", "agent", "cell", "mode")})
        # a hidden setting (one that does not act on this run) is left at its default
        values.update({name: FIELD_DEFAULTS[name] for name in values if not applies(name, run)})
        return TrainConfig(**values)

    def widgets(self) -> pn.Column:
        """The settings' widgets: the agent, cell and gradient choices as labelled button groups whose selected
        button is filled; numbers as sliders, or typed inputs (``TYPED``) whose out-of-range values are corrected
        to the nearest bound with a message saying so."""
        choice = {"type": pn.widgets.RadioButtonGroup, "button_type": "primary", "button_style": "outline"}
        widgets = {"chain_length": pn.widgets.IntSlider, "agent": choice, "cell": choice, "mode": choice}
        items, shown = [], {}
        for name in self.param:
            if name == "name":
                continue
            spec = widgets.get(name, {})
            spec = {**({"type": spec} if isinstance(spec, type) else spec), "width": SIDEBAR_WIDGET_WIDTH}
            if name in TYPED:
                widget = self.typed_input(name)
            else:
                widget = pn.Param(self.param[name], show_name=False, widgets={name: spec})
            if name in ("agent", "cell", "mode"):
                widget = pn.Column(pn.pane.Markdown(self.param[name].label, margin=(4, 10, -12, 10)), widget)
            shown[name] = widget
            items.append(widget)

        def show_relevant(*_) -> None:  # only the settings that apply to this task and agent
            for name, widget in shown.items():
                widget.visible = self.applies(name)

        self.param.watch(show_relevant, ["task", "agent", "cell", "mode"])
        show_relevant()
        return pn.Column(*items)

    def typed_input(self, name: str) -> pn.widgets.Widget:
        """A typed number input for setting ``name``, kept in step with it both ways. A value outside the setting's
        bounds (which a teacher's server limits can narrow) is corrected to the nearest bound, and a message says
        what was typed and what is used; an emptied field gets the setting back."""
        kind, step = TYPED[name]
        widget = kind(name=self.param[name].label, value=getattr(self, name), step=step, width=SIDEBAR_WIDGET_WIDTH)

        def typed(event) -> None:
            value = getattr(self, name) if event.new is None else event.new
            used, message = self.within_bounds(name, value)
            if message:
                notify(message, "warning")
            if used != event.new:
                widget.value = used
            setattr(self, name, used)

        widget.param.watch(typed, "value")
        self.param.watch(lambda event: setattr(widget, "value", event.new), name)
        return widget

    def within_bounds(self, name: str, value):
        """``value`` for setting ``name`` moved to the nearest bound where it lies outside them, and the message that
        says so (None where it was within)."""
        low, high = self.param[name].bounds
        used = max(value, low) if high is None else min(max(value, low), high)
        if used == value:
            return value, None
        side = "below the smallest" if value < low else "above the largest"
        return used, f"{self.param[name].label}: {value:g} is {side} allowed value; {used:g} is used"

    def query_value(self, name: str) -> str:
        """Setting ``name`` as a shared link writes it (as Panel's URL sync does: JSON for anything but text)."""
        value = getattr(self, name)
        return value if isinstance(value, str) else json.dumps(value)

    def apply_query(self, query: dict) -> list[str]:
        """Take the settings a shared link carries (the page's URL query, ``name=value``). The task, agent, cell and
        gradient first (choosing them sets presets that the link's own values then override); numbers outside their
        bounds are corrected. Returns one message per value corrected or not understood."""
        names = [n for n in QUERY_FIRST if n in query] + [n for n in query if n in SHARED and n not in QUERY_FIRST]
        messages = []
        for name in names:
            raw = query[name]
            parameter = self.param[name]
            try:
                if isinstance(parameter, param.Boolean):
                    value = raw if isinstance(raw, bool) else {"true": True, "false": False}[str(raw).lower()]
                elif isinstance(parameter, param.Number):
                    value, message = self.within_bounds(name, type(parameter.default)(raw))
                    if message:
                        messages.append(message)
                else:
                    value = str(raw)
                setattr(self, name, value)
            except (KeyError, TypeError, ValueError):
                messages.append(f"the link's {name}={raw} is not a choice here: {name} stays {getattr(self, name)}")
        return messages

    def applies(self, name: str) -> bool:
        """Whether setting ``name`` acts on a run of the chosen task, agent, cell and mode (``config.SCOPES``)."""
        return applies(name, types.SimpleNamespace(env=self.task, agent=self.agent, cell=self.cell, mode=self.mode))


# every setting, each carried by a shared link (the page's URL query)
SHARED = [name for name in LabSettings.param if name != "name"]


def member_configs(base: TrainConfig, chain_lengths: list[int], seeds: int) -> list[TrainConfig]:
    """One population's members: every chain length x seed (they differ in nothing else)."""
    return [dataclasses.replace(base, chain_length=L, seed=base.seed + s) for L in chain_lengths for s in range(seeds)]
