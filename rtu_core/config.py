"""Run configuration: one typed, validated dataclass shared by the CLI, the app, notebooks and sweeps.

Fields left at ``None`` are resolved when the config is built: ``mode`` follows the cell (RTRL for the RTU,
TBPTT(1) otherwise) and the network and learning settings come from the paper's presets for the task and agent
(``rtu_core.presets``, ``docs/method.md`` §7). A resolved config holds no ``None`` in those fields, so
``config.json`` records exactly what ran and reloading it gives the same run.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from . import engines
from .envs import ENV_NAMES, MASKS, TIMINGS
from .layers import ACTIVATIONS
from .network import CELLS, MODES
from .presets import PRESET_FIELDS, preset

AGENT_NAMES = ("stream_ac", "qrc", "ppo")
OPTIMIZER_NAMES = ("obgd", "adaptive_obgd")
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
MEMORY_TASKS = ("memory_chain", "kmemory_chain")
PPO_FIELDS = ("ppo_num_envs", "ppo_rollout_steps", "ppo_minibatches", "ppo_epochs", "ppo_lr_actor", "ppo_lr_critic")
PPO_FIELDS += ("ppo_max_grad_norm", "ppo_gae_lambda", "ppo_clip", "ppo_entropy_coeff")


def _streaming_rtrl(c) -> bool:
    return c.mode == "rtrl" and c.agent != "ppo"


# Which runs each setting acts on; a setting not listed acts on every run. One fact, read by validation (a setting
# given a value where it does not act is an error, except the preset-filled ones, which every config holds, and
# UNCHECKED), by the CLI's help and by the lab (which hides such settings and leaves them at their defaults).
# A predicate reads env, agent, cell and mode only.
SCOPES: dict[str, tuple[str, typing.Callable]] = {
    "chain_length": ("memory_chain and kmemory_chain", lambda c: c.env in MEMORY_TASKS),
    "num_bits": ("memory_chain", lambda c: c.env == "memory_chain"),
    "observation_timing": ("memory_chain", lambda c: c.env == "memory_chain"),
    "mask": ("mujoco:<Robot> envs", lambda c: c.env.startswith("mujoco:")),
    "nonlinear_rtu": ("cell rtu", lambda c: c.cell == "rtu"),
    "rtu_r_min": ("cell rtu", lambda c: c.cell == "rtu"),
    "taylor_sensitivity": ("streaming agents in mode rtrl (cell rtu)", _streaming_rtrl),
    "rtrl_refresh": ("streaming agents in mode rtrl (cell rtu)", _streaming_rtrl),
    "staleness_every": ("streaming agents in mode rtrl (cell rtu)", _streaming_rtrl),
    "trace_decay": ("stream_ac and qrc", lambda c: c.agent != "ppo"),
    **{
        name: ("agent stream_ac", lambda c: c.agent == "stream_ac")
        for name in ("optimizer", "lr", "kappa_actor", "kappa_critic", "entropy_coeff")
    },
    **{
        name: ("agent qrc", lambda c: c.agent == "qrc")
        for name in ("lr_q", "lr_h", "beta", "epsilon_start", "epsilon_end", "exploration_fraction", "grad_clip")
    },
    "no_gradient_correction": ("agent qrc", lambda c: c.agent == "qrc"),
    **{name: ("agent ppo", lambda c: c.agent == "ppo") for name in PPO_FIELDS},
}


# scoped settings that validation lets pass anywhere: chain_length is a population member's field, which grids and
# populations carry whatever the env
UNCHECKED = ("chain_length",)


def applies(name: str, config) -> bool:
    """Whether setting ``name`` acts on a run of ``config`` (anything with env, agent, cell and mode)."""
    return name not in SCOPES or bool(SCOPES[name][1](config))


# Fields that configs no longer have, with the value that meant what runs now: a config.json that holds one at that
# value loads (results written before it went); at any other value it asks for something that no longer exists.
RETIRED_FIELDS = {"compile": False}


class ConfigError(ValueError):
    """An invalid run configuration; the message is one line meant for the user."""


def _help(text: str, default=None) -> dict:
    return {"metadata": {"help": text}, "default": default}


@dataclass
class TrainConfig:
    """One training run (or a population of P runs in lockstep): task, agent, network, budget and settings.

    Every field is a command-line option (``chain_length`` -> ``--chain-length``); ``help`` says what it means.
    ``None`` means "the preset for this task and agent" (resolved in ``__post_init__``)."""

    # task
    env: str = field(
        **_help(
            "environment: memory_chain, kmemory_chain, popgym:<Task>, mujoco:<Robot> "
            "(python -m rtu_core envs lists them)",
            "memory_chain",
        )
    )
    chain_length: int = field(
        **_help(
            "MemoryChain memory length L (episode = L + 1 actions); KMemoryChain k (recall the bit from k steps back)",
            16,
        )
    )
    num_bits: int = field(**_help("MemoryChain: context bits (bsuite num_bits; one of them is queried)", 1))
    observation_timing: str = field(
        **_help(
            "MemoryChain: bsuite (the paper's task: observations one step behind "
            "the time) or immediate (a harder variant)",
            "bsuite",
        )
    )
    mask: str = field(**_help("masked MuJoCo: F full, P positions only, V velocities only", "F"))
    # agent and network
    agent: str = field(**_help("agent: " + ", ".join(AGENT_NAMES), "stream_ac"))
    cell: str = field(**_help("recurrent cell: " + ", ".join(CELLS), "rtu"))
    mode: str | None = field(
        **_help("rtrl (exact, RTU only) or tbptt (one-step horizon); default: rtrl for the rtu, tbptt otherwise")
    )
    nonlinear_rtu: bool = field(**_help("tanh inside the RTU recurrence", False))
    rtu_r_min: float = field(
        **_help(
            "RTU initial eigenvalue moduli: r² ~ U(r_min², 1) (0: the paper's r² ~ U(0, 1); e.g. 0.99 for the "
            "long-memory diagnostic of docs/method.md §8)",
            0.0,
        )
    )
    taylor_sensitivity: bool = field(
        **_help("first-order Taylor correction of stale RTRL sensitivities (paper §4.4): gradients use S + C", False)
    )
    rtrl_refresh: int = field(
        **_help(
            "every k steps, recompute the RTRL state under the current parameters by "
            "replaying the episode (0: never, standard RTRL)",
            0,
        )
    )
    staleness_every: int = field(
        **_help(
            "every k steps, measure how far the RTRL sensitivities are from their "
            "replay under the current parameters (0: off)",
            0,
        )
    )
    hidden_size: int = field(**_help("RTU complex units / GRU units", 192))
    width: int | None = field(**_help("feature layer width (the cell's input size); preset"))
    feature_layers: int | None = field(
        **_help("feature blocks (Dense -> LayerNorm -> activation) before the cell; preset")
    )
    head_width: int | None = field(**_help("hidden layer of the head (0: linear read-out); preset"))
    activation: str | None = field(**_help("feature activation: " + ", ".join(ACTIVATIONS) + "; preset"))
    sparsity: float = field(**_help("fraction of each layer's weights zeroed at init", 0.9))
    dtype: str = field(**_help("float32 or float64", "float32"))
    engine: str = field(
        **_help(
            "how the step is computed (rtu_core/engines): auto (native on the cpu where it applies, graphs on a gpu, "
            "else eager), eager (the PyTorch step: fused where it applies, else autograd), or one by name: "
            "autograd, fused, native, graphs",
            "auto",
        )
    )
    device: str = field(
        **_help(
            "cpu, or cuda (cuda:N) to run the agents' population on a GPU by the PyTorch step, replayed as CUDA "
            "graphs unless engine is eager (environments and normalisers stay on the CPU)",
            "cpu",
        )
    )
    # run
    steps: int = field(**_help("environment steps per member", 100_000))
    seed: int = field(**_help("seed of member 0 (member k uses seed + k)", 0))
    population: int = field(**_help("independent agents trained in lockstep", 1))
    eval_episodes: int = field(**_help("greedy evaluation episodes after training", 100))
    time_limit: float | None = field(**_help("stop cleanly after this many seconds"))
    snapshot_every: int = field(**_help("steps between diagnostic snapshots (0: off)", 0))
    snapshot_window: int = field(**_help("hidden-state steps kept for snapshots", 256))
    progress_every: int = field(**_help("steps between progress events", 500))
    # shared learning settings
    gamma: float = field(**_help("discount", 0.99))
    trace_decay: float | None = field(**_help("eligibility trace λ; preset (0.8 Stream AC, 0.95 QRC)"))
    # Stream AC(λ)
    optimizer: str = field(**_help("obgd or adaptive_obgd", "obgd"))
    lr: float = field(**_help("ObGD step size α", 1.0))
    kappa_actor: float | None = field(**_help("ObGD κ of the actor; preset"))
    kappa_critic: float | None = field(**_help("ObGD κ of the critic; preset"))
    entropy_coeff: float | None = field(**_help("entropy bonus η; preset"))
    # QRC(λ)
    lr_q: float = field(**_help("QRC step size of Q", 1e-4))
    lr_h: float = field(**_help("QRC step size of h", 1e-5))
    beta: float = field(**_help("QRC regularisation of h", 1.0))
    epsilon_start: float = field(**_help("initial ε of ε-greedy", 1.0))
    epsilon_end: float = field(**_help("final ε of ε-greedy", 0.01))
    exploration_fraction: float | None = field(**_help("fraction of steps over which ε decays; preset"))
    grad_clip: float | None = field(**_help("per-member global-norm clip of QRC updates (0: off); preset"))
    no_gradient_correction: bool = field(
        **_help(
            "QRC without its gradient correction (h ≡ 0): Q's step is Watkins Q(λ)'s, θ_Q ← θ_Q + α_Q δ z_Q "
            "(a diagnostic; the paper's QRC has the correction)",
            False,
        )
    )
    # batched PPO baseline (docs/method.md §5)
    ppo_num_envs: int | None = field(**_help("PPO: parallel environments; preset"))
    ppo_rollout_steps: int | None = field(**_help("PPO: steps per environment per rollout; preset"))
    ppo_minibatches: int = field(**_help("PPO: minibatches of sequences per epoch", 32))
    ppo_epochs: int = field(**_help("PPO: passes over each rollout", 4))
    ppo_lr_actor: float = field(**_help("PPO: Adam step size of the actor", 3e-4))
    ppo_lr_critic: float = field(**_help("PPO: Adam step size of the critic", 1e-4))
    ppo_max_grad_norm: float = field(**_help("PPO: gradient-norm clip per network", 1.5))
    ppo_gae_lambda: float = field(**_help("PPO: GAE λ", 0.95))
    ppo_clip: float = field(**_help("PPO: ratio and value clip ε", 0.2))
    ppo_entropy_coeff: float = field(**_help("PPO: entropy bonus", 0.0))

    def __post_init__(self):
        if self.agent in AGENT_NAMES and self.env in ENV_NAMES:  # else validate() names the bad value
            if self.mode is None:
                self.mode = "rtrl" if self.cell == "rtu" else "tbptt"
            for name, value in preset(self.env, self.agent).items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        self.validate()

    def validate(self) -> None:
        def choose(name: str, options) -> None:
            if getattr(self, name) not in options:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r} (choose from {', '.join(options)})")

        choose("env", ENV_NAMES)
        choose("mask", MASKS)
        choose("observation_timing", TIMINGS)
        choose("agent", AGENT_NAMES)
        choose("cell", CELLS)
        choose("mode", MODES)
        choose("activation", tuple(ACTIVATIONS))
        choose("optimizer", OPTIMIZER_NAMES)
        choose("dtype", ("float32", "float64"))
        choose("engine", engines.REQUESTS)
        self._validate_device()
        if self.mode == "rtrl" and self.cell != "rtu":
            raise ConfigError(f"mode rtrl needs cell rtu ({self.cell} trains with mode tbptt)")
        positive = (
            "chain_length",
            "num_bits",
            "steps",
            "population",
            "hidden_size",
            "width",
            "feature_layers",
            "progress_every",
            "snapshot_window",
            "ppo_num_envs",
            "ppo_rollout_steps",
            "ppo_minibatches",
            "ppo_epochs",
        )
        for name in positive:
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("eval_episodes", "snapshot_every", "head_width", "seed", "rtrl_refresh", "staleness_every"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= 0, got {getattr(self, name)!r}")
        unit = ("gamma", "trace_decay", "epsilon_start", "epsilon_end", "exploration_fraction")
        for name in unit:
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 <= self.rtu_r_min < 1.0:
            raise ConfigError(f"rtu-r-min must be in [0, 1), got {self.rtu_r_min!r}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1), got {self.sparsity!r}")
        for name in ("lr", "kappa_actor", "kappa_critic", "lr_q", "lr_h"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name.replace('_', '-')} must be > 0, got {getattr(self, name)!r}")
        for name in ("entropy_coeff", "beta"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)!r}")
        self._validate_scopes()
        engines.preferred(self)  # raises where the engine asked for does not apply
        if self.agent == "ppo":
            self._validate_ppo()
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"time-limit must be > 0, got {self.time_limit!r}")
        if not self.grad_clip >= 0:
            raise ConfigError(f"grad-clip must be >= 0 (0: off), got {self.grad_clip!r}")

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

    def _validate_ppo(self) -> None:
        if self.population != 1:
            raise ConfigError("ppo is a batched agent: population must be 1 (sweep seeds instead)")
        chunks = max(1, self.ppo_minibatches // self.ppo_num_envs)
        if self.ppo_rollout_steps % chunks or (self.ppo_num_envs * chunks) % self.ppo_minibatches:
            raise ConfigError(
                "ppo-minibatches must split ppo-num-envs x (rollout sequences) evenly "
                f"(got {self.ppo_minibatches} minibatches, {self.ppo_num_envs} envs x "
                f"{self.ppo_rollout_steps} steps)"
            )
        if self.steps < self.ppo_num_envs * self.ppo_rollout_steps:
            raise ConfigError(f"steps must cover one PPO rollout ({self.ppo_num_envs * self.ppo_rollout_steps})")

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
