"""Run configuration: one typed, validated dataclass shared by the CLI, the app, notebooks and sweeps.

Fields left at ``None`` are resolved when the config is built: ``mode`` follows the cell (RTRL for the RTU,
TBPTT(1) otherwise) and the network and learning settings come from the paper's presets for the task and agent
(``rtu_core.presets``, ``docs/method.md`` §7). A resolved config holds no ``None`` in those fields, so
``config.json`` records exactly what ran and reloading it gives the same run.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from . import engines
from .envs import ENV_NAMES
from .presets import PRESET_FIELDS, preset
from .settings import (
    AGENT_NAMES,
    CONCERNS,
    ConfigError,
    LearningSettings,
    NetworkSettings,
    PPOSettings,
    QRCSettings,
    RunSettings,
    StreamACSettings,
    TaskSettings,
    choose,
    scopes,
)

# The memory methods compared throughout (paper §4.1): name -> (cell, mode).
METHODS = {
    "rtu-rtrl": ("rtu", "rtrl"),
    "rtu-tbptt": ("rtu", "tbptt"),
    "gru-tbptt": ("gru", "tbptt"),
    "ffn-tbptt": ("ffn", "tbptt"),
}
# Each cell's own gradient method (what PPO uses per cell: RTRL for the RTU, BPTT for the others).
METHOD_OF_CELL = {"rtu": "rtu-rtrl", "gru": "gru-tbptt", "ffn": "ffn-tbptt"}
METHOD_LABELS = {
    "rtu-rtrl": "RTU, RTRL",
    "rtu-tbptt": "RTU, TBPTT(1)",
    "gru-tbptt": "GRU, TBPTT(1)",
    "ffn-tbptt": "FFN (no memory)",
}
# Fields in which the members of one population may differ (everything else runs in lockstep).
MEMBER_FIELDS = ("seed", "chain_length", "observation_timing")


# Which runs each setting acts on (``settings.scopes``: each concern's fields); a setting not listed acts on every
# run. One fact, read by validation (a setting given a value where it does not act is an error, except the
# preset-filled ones, which every config holds, and UNCHECKED), by the CLI's help and by the lab (which hides such
# settings and leaves them at their defaults). A scope reads env, agent, cell and mode only.
SCOPES = scopes()


# scoped settings that validation lets pass anywhere: chain_length is a population member's field, which grids and
# populations carry whatever the env
UNCHECKED = ("chain_length",)


def applies(name: str, config) -> bool:
    """Whether setting ``name`` acts on a run of ``config`` (anything with env, agent, cell and mode)."""
    return name not in SCOPES or bool(SCOPES[name][1](config))


# Fields that configs no longer have, with the value that meant what runs now: a config.json that holds one at that
# value loads (results written before it went); at any other value it asks for something that no longer exists.
RETIRED_FIELDS = {"compile": False}


@dataclass
class TrainConfig(
    PPOSettings, QRCSettings, StreamACSettings, LearningSettings, RunSettings, NetworkSettings, TaskSettings
):
    """One training run (or a population of P runs in lockstep): the settings of every concern (``settings``), its
    fields in their order (task, network, run, learning, Stream AC(λ), QRC(λ), PPO).

    Every field is a command-line option (``chain_length`` -> ``--chain-length``); ``help`` says what it means.
    ``None`` means "the preset for this task and agent" (resolved in ``__post_init__``)."""

    def __post_init__(self):
        if self.agent in AGENT_NAMES and self.env in ENV_NAMES:  # else validate() names the bad value
            if self.mode is None:
                self.mode = "rtrl" if self.cell == "rtu" else "tbptt"
            for name, value in preset(self.env, self.agent).items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        self.validate()

    def validate(self) -> None:
        """Each concern's named values first (the checks after them read agent, cell, mode and env), the engine and
        device, each concern's own checks, then that no setting is given where it does not act."""
        # the task's and the run's first: where the env or the agent is unknown, mode and the presets are unresolved
        for concern in (TaskSettings, RunSettings, *(c for c in CONCERNS if c not in (TaskSettings, RunSettings))):
            concern.choices(self)
        choose(self, "engine", engines.REQUESTS)
        self._validate_device()
        for concern in CONCERNS:
            concern.check(self)
        self._validate_scopes()
        engines.preferred(self)  # raises where the engine asked for does not apply

    def _validate_scopes(self) -> None:
        """A setting given where it does not act (``SCOPES``) is an error: it would silently do nothing."""
        for name, (scope, _) in SCOPES.items():
            checked = name not in PRESET_FIELDS and name not in UNCHECKED
            if checked and not applies(name, self) and getattr(self, name) != FIELD_DEFAULTS[name]:
                run = f"env {self.env}, agent {self.agent}, cell {self.cell}, mode {self.mode}"
                raise ConfigError(f"{name.replace('_', '-')} applies to {scope} (this run: {run})")

    def _validate_device(self) -> None:
        if self.device == "cpu":
            return
        if not (self.device == "cuda" or (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise ConfigError(f"unknown device {self.device!r} (choose cpu, cuda or cuda:N)")
        if self.agent == "ppo" or self.engine == "native":
            raise ConfigError("device cuda runs the streaming agents' PyTorch step (not ppo or engine native)")
        if self.rtrl_refresh or self.staleness_every:
            raise ConfigError("rtrl-refresh and staleness-every run on the cpu")
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device {self.device}: torch sees no CUDA GPU here (use device cpu)")

    def network_kwargs(self) -> dict:
        return dict(
            cell=self.cell,
            mode=self.mode,
            hidden_size=self.hidden_size,
            width=self.width,
            feature_layers=self.feature_layers,
            head_width=self.head_width,
            nonlinear_rtu=self.nonlinear_rtu,
            rtu_r_min=self.rtu_r_min,
            activation=self.activation,
            sparsity=self.sparsity,
            taylor=self.taylor_sensitivity,
        )

    def env_kwargs(self) -> dict:
        """The arguments of ``envs.make_env`` for this config's task."""
        return dict(
            chain_length=self.chain_length,
            num_bits=self.num_bits,
            observation_timing=self.observation_timing,
            mask=self.mask,
        )

    def member(self, index: int) -> "TrainConfig":
        """The solo configuration of population member ``index`` (seed + index, population 1)."""
        return dataclasses.replace(self, seed=self.seed + index, population=1)

    def members(self) -> list["TrainConfig"]:
        """The solo configurations of all population members."""
        return [self.member(i) for i in range(self.population)]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        for name, value in RETIRED_FIELDS.items():
            if name in values:
                if values[name] != value:
                    raise ConfigError(f"{name} {values[name]!r} is no longer an option (removed; only {value!r} loads)")
                values = {k: v for k, v in values.items() if k != name}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**values)


# every field's default (None: the preset for the task and agent); a config.json that predates a field reads it so
FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def field_type(name: str) -> type:
    """The value type of a TrainConfig field (``int`` for ``int | None``)."""
    hint = typing.get_type_hints(TrainConfig)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def pack_population(members: "TrainConfig | list[TrainConfig]") -> tuple[TrainConfig, list[TrainConfig]]:
    """(population config, member configs) for one config with ``population`` P, or for a list of solo
    configs that differ only in MEMBER_FIELDS (e.g. seeds and chain lengths of a sweep)."""
    if isinstance(members, TrainConfig):
        return members, members.members()
    members = list(members)
    if not members:
        raise ConfigError("a population needs at least one member")
    first = members[0]
    shared = {f.name for f in dataclasses.fields(TrainConfig)} - set(MEMBER_FIELDS) - {"population"}
    for m in members:
        if m.population != 1:
            raise ConfigError("population members must have population 1")
        differing = sorted(n for n in shared if getattr(m, n) != getattr(first, n))
        if differing:
            raise ConfigError(
                f"population members differ in {', '.join(differing)} (only {', '.join(MEMBER_FIELDS)} may)"
            )
    return dataclasses.replace(first, population=len(members)), members
