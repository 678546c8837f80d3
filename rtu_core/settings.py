"""A run's settings by concern: the task, the network, the run, the learning settings the agents share, and Stream
AC(λ)'s, QRC(λ)'s and PPO's own. ``config.TrainConfig`` is all of them in one flat dataclass: each field is a
command-line flag (``chain_length`` -> ``--chain-length``) and a key of config.json.

Each concern holds its fields (with their help), which runs they act on (``scopes``: read by validation, the CLI's
help and the lab) and the checks of their values (``check``). ``None`` means "the preset for this task and agent"
(``presets``), resolved when a ``TrainConfig`` is built.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from .envs import ENV_NAMES, MASKS, TIMINGS
from .layers import ACTIVATIONS
from .network import CELLS, MODES

AGENT_NAMES = ("stream_ac", "qrc", "ppo")
OPTIMIZER_NAMES = ("obgd", "adaptive_obgd")
MEMORY_TASKS = ("memory_chain", "kmemory_chain")
Scope = tuple[str, typing.Callable]  # (which runs, in words; whether a config is one of them)


class ConfigError(ValueError):
    """An invalid run configuration; the message is one line meant for the user."""


def _help(text: str, default=None) -> dict:
    return {"metadata": {"help": text}, "default": default}


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _integers(config, names: tuple[str, ...], least: int) -> None:
    for name in names:
        value = getattr(config, name)
        if int(value) != value or value < least:
            raise ConfigError(f"{_flag(name)} must be an integer >= {least}, got {value!r}")


def _within(config, names: tuple[str, ...], low: float, high: float, closed: bool = True) -> None:
    """Each value in [low, high] (``closed``) or [low, high); None (a preset still to come) passes."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not (low <= value <= high if closed else low <= value < high):
            raise ConfigError(f"{_flag(name)} must be in [{low:g}, {high:g}{']' if closed else ')'}, got {value!r}")


def _above(config, names: tuple[str, ...], least: float, strict: bool) -> None:
    for name in names:
        value = getattr(config, name)
        if not (value > least if strict else value >= least):
            raise ConfigError(f"{_flag(name)} must be {'>' if strict else '>='} {least:g}, got {value!r}")


def choose(config, name: str, options) -> None:
    """A setting with named values: one of ``options``."""
    if getattr(config, name) not in options:
        raise ConfigError(f"unknown {name} {getattr(config, name)!r} (choose from {', '.join(options)})")


def _streaming_rtrl(c) -> bool:
    return c.mode == "rtrl" and c.agent != "ppo"


@dataclass
class TaskSettings:
    """The task."""

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

    scopes: typing.ClassVar[dict[str, Scope]] = {
        "chain_length": ("memory_chain and kmemory_chain", lambda c: c.env in MEMORY_TASKS),
        "num_bits": ("memory_chain", lambda c: c.env == "memory_chain"),
        "observation_timing": ("memory_chain", lambda c: c.env == "memory_chain"),
        "mask": ("mujoco:<Robot> envs", lambda c: c.env.startswith("mujoco:")),
    }

    def choices(self) -> None:
        choose(self, "env", ENV_NAMES)
        choose(self, "mask", MASKS)
        choose(self, "observation_timing", TIMINGS)

    def check(self) -> None:
        _integers(self, ("chain_length", "num_bits"), 1)


@dataclass
class NetworkSettings:
    """The network: its cell, how the cell's gradient is found, its size."""

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

    scopes: typing.ClassVar[dict[str, Scope]] = {
        "nonlinear_rtu": ("cell rtu", lambda c: c.cell == "rtu"),
        "rtu_r_min": ("cell rtu", lambda c: c.cell == "rtu"),
        **{
            name: ("streaming agents in mode rtrl (cell rtu)", _streaming_rtrl)
            for name in ("taylor_sensitivity", "rtrl_refresh", "staleness_every")
        },
    }

    def choices(self) -> None:
        choose(self, "cell", CELLS)
        choose(self, "mode", MODES)
        choose(self, "activation", tuple(ACTIVATIONS))

    def check(self) -> None:
        if self.mode == "rtrl" and self.cell != "rtu":
            raise ConfigError(f"mode rtrl needs cell rtu ({self.cell} trains with mode tbptt)")
        _integers(self, ("hidden_size", "width", "feature_layers"), 1)
        _integers(self, ("head_width", "rtrl_refresh", "staleness_every"), 0)
        _within(self, ("rtu_r_min", "sparsity"), 0.0, 1.0, closed=False)


@dataclass
class RunSettings:
    """The run: the agent, how its step is computed, the budget, seeds, population and what it reports."""

    agent: str = field(**_help("agent: " + ", ".join(AGENT_NAMES), "stream_ac"))
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
    steps: int = field(**_help("environment steps per member", 100_000))
    seed: int = field(**_help("seed of member 0 (member k uses seed + k)", 0))
    population: int = field(**_help("independent agents trained in lockstep", 1))
    eval_episodes: int = field(**_help("greedy evaluation episodes after training", 100))
    time_limit: float | None = field(**_help("stop cleanly after this many seconds"))
    snapshot_every: int = field(**_help("steps between diagnostic snapshots (0: off)", 0))
    snapshot_window: int = field(**_help("hidden-state steps kept for snapshots", 256))
    progress_every: int = field(**_help("steps between progress events", 500))

    scopes: typing.ClassVar[dict[str, Scope]] = {}

    def choices(self) -> None:
        choose(self, "agent", AGENT_NAMES)
        choose(self, "dtype", ("float32", "float64"))

    def check(self) -> None:
        _integers(self, ("steps", "population", "progress_every", "snapshot_window"), 1)
        _integers(self, ("eval_episodes", "snapshot_every", "seed"), 0)
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"time-limit must be > 0, got {self.time_limit!r}")


@dataclass
class LearningSettings:
    """What the agents share: the discount, and the streaming agents' trace decay."""

    gamma: float = field(**_help("discount", 0.99))
    trace_decay: float | None = field(**_help("eligibility trace λ; preset (0.8 Stream AC, 0.95 QRC)"))

    scopes: typing.ClassVar[dict[str, Scope]] = {"trace_decay": ("stream_ac and qrc", lambda c: c.agent != "ppo")}

    def choices(self) -> None:
        pass

    def check(self) -> None:
        _within(self, ("gamma", "trace_decay"), 0.0, 1.0)


@dataclass
class StreamACSettings:
    """Stream AC(λ): ObGD and the entropy bonus."""

    optimizer: str = field(**_help("obgd or adaptive_obgd", "obgd"))
    lr: float = field(**_help("ObGD step size α", 1.0))
    kappa_actor: float | None = field(**_help("ObGD κ of the actor; preset"))
    kappa_critic: float | None = field(**_help("ObGD κ of the critic; preset"))
    entropy_coeff: float | None = field(**_help("entropy bonus η; preset"))

    scope: typing.ClassVar[Scope] = ("agent stream_ac", lambda c: c.agent == "stream_ac")

    def choices(self) -> None:
        choose(self, "optimizer", OPTIMIZER_NAMES)

    def check(self) -> None:
        _above(self, ("lr", "kappa_actor", "kappa_critic"), 0.0, strict=True)
        _above(self, ("entropy_coeff",), 0.0, strict=False)


@dataclass
class QRCSettings:
    """QRC(λ): its two step sizes, h's regularisation, ε-greedy exploration and the update's clip."""

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

    scope: typing.ClassVar[Scope] = ("agent qrc", lambda c: c.agent == "qrc")

    def choices(self) -> None:
        pass

    def check(self) -> None:
        _within(self, ("epsilon_start", "epsilon_end", "exploration_fraction"), 0.0, 1.0)
        _above(self, ("lr_q", "lr_h"), 0.0, strict=True)
        _above(self, ("beta",), 0.0, strict=False)
        if not self.grad_clip >= 0:
            raise ConfigError(f"grad-clip must be >= 0 (0: off), got {self.grad_clip!r}")


@dataclass
class PPOSettings:
    """The batched PPO baseline (docs/method.md §5)."""

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

    scope: typing.ClassVar[Scope] = ("agent ppo", lambda c: c.agent == "ppo")

    def choices(self) -> None:
        pass

    def check(self) -> None:
        _integers(self, ("ppo_num_envs", "ppo_rollout_steps", "ppo_minibatches", "ppo_epochs"), 1)
        if self.agent != "ppo":
            return
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


# the concerns in the order of TrainConfig's fields (its bases in reverse)
CONCERNS = (TaskSettings, NetworkSettings, RunSettings, LearningSettings, StreamACSettings, QRCSettings, PPOSettings)


def scopes() -> dict[str, Scope]:
    """Which runs each setting acts on, from every concern: its fields' own scopes, or the concern's for all of its
    fields. A setting not listed acts on every run."""
    found = {}
    for concern in CONCERNS:
        whole = getattr(concern, "scope", None)
        own = getattr(concern, "scopes", {})
        for name in (f.name for f in dataclasses.fields(concern)):
            scope = own.get(name, whole)
            if scope is not None:
                found[name] = scope
    return found
