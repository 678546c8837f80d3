"""Run configuration: one typed, validated dataclass shared by the CLI, the app, notebooks and sweeps."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .envs import ENV_NAMES, MASKS
from .network import ACTIVATIONS, CELLS, MODES

AGENT_NAMES = ("stream_ac", "qrc", "ppo")
OPTIMIZER_NAMES = ("obgd", "adaptive_obgd")
DEFAULT_TRACE_DECAY = {"stream_ac": 0.8, "qrc": 0.95}
# The memory methods compared throughout (paper §4.1): name -> (cell, mode).
METHODS = {"rtu-rtrl": ("rtu", "rtrl"), "rtu-tbptt": ("rtu", "tbptt"), "gru-tbptt": ("gru", "tbptt"),
           "ffn-tbptt": ("ffn", "tbptt")}
# Each cell's own gradient method (what PPO uses per cell: RTRL for the RTU, BPTT for the others).
METHOD_OF_CELL = {"rtu": "rtu-rtrl", "gru": "gru-tbptt", "ffn": "ffn-tbptt"}
METHOD_LABELS = {"rtu-rtrl": "RTU, RTRL", "rtu-tbptt": "RTU, TBPTT(1)", "gru-tbptt": "GRU, TBPTT(1)",
                 "ffn-tbptt": "FFN (no memory)"}
# Fields in which the members of one population may differ (everything else runs in lockstep).
MEMBER_FIELDS = ("seed", "chain_length", "lagged_observation")


class ConfigError(ValueError):
    """An invalid run configuration; the message is one line meant for the user."""


@dataclass
class TrainConfig:
    # task
    env: str = field(default="memory_chain", metadata={"help": "environment: memory_chain, kmemory_chain, popgym:<Task>, mujoco:<Robot> (python -m rtu_core envs lists them)"})
    chain_length: int = field(default=16, metadata={"help": "(K)MemoryChain memory length L (episode = L + 1 steps)"})
    num_bits: int = field(default=2, metadata={"help": "KMemoryChain: context bits K recalled together (2^K actions)"})
    mask: str = field(default="F", metadata={"help": "masked MuJoCo: F full, P positions only, V velocities only"})
    lagged_observation: bool = field(default=False, metadata={"help": "the paper's one-step-late MemoryChain observations"})
    # agent and network
    agent: str = field(default="stream_ac", metadata={"help": "streaming agent: " + ", ".join(AGENT_NAMES)})
    cell: str = field(default="rtu", metadata={"help": "recurrent cell: " + ", ".join(CELLS)})
    mode: str = field(default="rtrl", metadata={"help": "rtrl (exact, RTU only) or tbptt (one-step horizon)"})
    nonlinear_rtu: bool = field(default=False, metadata={"help": "tanh inside the RTU recurrence"})
    rtrl_refresh: int = field(default=0, metadata={"help": "every k steps, recompute the RTRL state under the current parameters by replaying the episode (0: never, standard RTRL)"})
    staleness_every: int = field(default=0, metadata={"help": "every k steps, measure how far the RTRL sensitivities are from their replay under the current parameters (0: off)"})
    hidden_size: int = field(default=192, metadata={"help": "RTU complex units / GRU units"})
    width: int = field(default=128, metadata={"help": "feature layer width (the cell's input size)"})
    head_width: int = field(default=0, metadata={"help": "hidden layer of the head (0: linear read-out)"})
    activation: str = field(default="leaky_relu", metadata={"help": "feature activation: " + ", ".join(ACTIVATIONS)})
    sparsity: float = field(default=0.9, metadata={"help": "fraction of each layer's weights zeroed at init"})
    dtype: str = field(default="float32", metadata={"help": "float32 or float64"})
    compile: bool = field(default=False, metadata={"help": "where a compiled step exists (stream_ac, rtu, rtrl, obgd, head-width 0), run each step as two torch.compile'd graphs: seconds to compile once per process, then about 3x faster; other settings run as without it"})
    # run
    steps: int = field(default=100_000, metadata={"help": "environment steps per member"})
    seed: int = field(default=0, metadata={"help": "seed of member 0 (member k uses seed + k)"})
    population: int = field(default=1, metadata={"help": "independent agents trained in lockstep"})
    eval_episodes: int = field(default=100, metadata={"help": "greedy evaluation episodes after training"})
    time_limit: float | None = field(default=None, metadata={"help": "stop cleanly after this many seconds"})
    snapshot_every: int = field(default=0, metadata={"help": "steps between diagnostic snapshots (0: off)"})
    snapshot_window: int = field(default=256, metadata={"help": "hidden-state steps kept for snapshots"})
    progress_every: int = field(default=500, metadata={"help": "steps between progress events"})
    # shared learning settings
    gamma: float = field(default=0.99, metadata={"help": "discount"})
    trace_decay: float | None = field(default=None, metadata={"help": "eligibility trace λ (default: 0.8 AC, 0.95 QRC)"})
    # Stream AC(λ)
    optimizer: str = field(default="obgd", metadata={"help": "obgd or adaptive_obgd"})
    lr: float = field(default=1.0, metadata={"help": "ObGD step size α"})
    kappa_actor: float = field(default=1.5, metadata={"help": "ObGD κ of the actor"})
    kappa_critic: float = field(default=1.0, metadata={"help": "ObGD κ of the critic"})
    entropy_coeff: float = field(default=0.01, metadata={"help": "entropy bonus η"})
    # QRC(λ)
    lr_q: float = field(default=1e-4, metadata={"help": "QRC step size of Q"})
    lr_h: float = field(default=1e-5, metadata={"help": "QRC step size of h"})
    beta: float = field(default=1.0, metadata={"help": "QRC regularisation of h"})
    epsilon_start: float = field(default=1.0, metadata={"help": "initial ε of ε-greedy"})
    epsilon_end: float = field(default=0.01, metadata={"help": "final ε of ε-greedy"})
    exploration_fraction: float = field(default=0.1, metadata={"help": "fraction of steps over which ε decays"})
    grad_clip: float | None = field(default=None, metadata={"help": "per-member global-norm clip of QRC updates"})
    # batched PPO baseline (SPEC.md §5; POPGym settings by default, MuJoCo: --ppo-num-envs 1 --ppo-rollout-steps 2048)
    ppo_num_envs: int = field(default=32, metadata={"help": "PPO: parallel environments"})
    ppo_rollout_steps: int = field(default=64, metadata={"help": "PPO: steps per environment per rollout"})
    ppo_minibatches: int = field(default=32, metadata={"help": "PPO: minibatches of sequences per epoch"})
    ppo_epochs: int = field(default=4, metadata={"help": "PPO: passes over each rollout"})
    ppo_lr_actor: float = field(default=3e-4, metadata={"help": "PPO: Adam step size of the actor"})
    ppo_lr_critic: float = field(default=1e-4, metadata={"help": "PPO: Adam step size of the critic"})
    ppo_max_grad_norm: float = field(default=1.5, metadata={"help": "PPO: gradient-norm clip per network"})
    ppo_gae_lambda: float = field(default=0.95, metadata={"help": "PPO: GAE λ"})
    ppo_clip: float = field(default=0.2, metadata={"help": "PPO: ratio and value clip ε"})
    ppo_entropy_coeff: float = field(default=0.0, metadata={"help": "PPO: entropy bonus"})

    def __post_init__(self):
        if self.trace_decay is None and self.agent in DEFAULT_TRACE_DECAY:
            self.trace_decay = DEFAULT_TRACE_DECAY[self.agent]
        self.validate()

    def validate(self) -> None:
        def choose(name: str, options) -> None:
            if getattr(self, name) not in options:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r} (choose from {', '.join(options)})")

        choose("env", ENV_NAMES)
        choose("mask", MASKS)
        if self.mask != "F" and not self.env.startswith("mujoco:"):
            raise ConfigError(f"mask {self.mask} applies to mujoco:<Robot> envs, not {self.env}")
        choose("agent", AGENT_NAMES)
        choose("cell", CELLS)
        choose("mode", MODES)
        choose("activation", tuple(ACTIVATIONS))
        choose("optimizer", OPTIMIZER_NAMES)
        choose("dtype", ("float32", "float64"))
        if self.mode == "rtrl" and self.cell != "rtu":
            raise ConfigError(f"mode rtrl needs cell rtu ({self.cell} trains with mode tbptt)")
        positive = ("chain_length", "num_bits", "steps", "population", "hidden_size", "width", "progress_every", "snapshot_window",
                    "ppo_num_envs", "ppo_rollout_steps", "ppo_minibatches", "ppo_epochs")
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
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1), got {self.sparsity!r}")
        for name in ("lr", "kappa_actor", "kappa_critic", "lr_q", "lr_h"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name.replace('_', '-')} must be > 0, got {getattr(self, name)!r}")
        for name in ("entropy_coeff", "beta"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)!r}")
        if (self.rtrl_refresh or self.staleness_every) and (self.mode != "rtrl" or self.agent == "ppo"):
            raise ConfigError("rtrl-refresh and staleness-every apply to streaming agents in mode rtrl")
        if self.agent == "ppo":
            self._validate_ppo()
        for name in ("time_limit", "grad_clip"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ConfigError(f"{name.replace('_', '-')} must be > 0, got {getattr(self, name)!r}")

    def _validate_ppo(self) -> None:
        if self.population != 1:
            raise ConfigError("ppo is a batched agent: population must be 1 (sweep seeds instead)")
        chunks = max(1, self.ppo_minibatches // self.ppo_num_envs)
        if self.ppo_rollout_steps % chunks or (self.ppo_num_envs * chunks) % self.ppo_minibatches:
            raise ConfigError("ppo-minibatches must split ppo-num-envs x (rollout sequences) evenly "
                              f"(got {self.ppo_minibatches} minibatches, {self.ppo_num_envs} envs x "
                              f"{self.ppo_rollout_steps} steps)")
        if self.steps < self.ppo_num_envs * self.ppo_rollout_steps:
            raise ConfigError(f"steps must cover one PPO rollout ({self.ppo_num_envs * self.ppo_rollout_steps})")

    @property
    def compiled_step(self) -> bool:
        """Whether this run uses ``rtu_core.compiled`` (``compile`` asked for, and a compiled step exists)."""
        return self.compile and (self.agent, self.cell, self.mode, self.head_width, self.optimizer) == (
            "stream_ac", "rtu", "rtrl", 0, "obgd")

    def network_kwargs(self) -> dict:
        return dict(cell=self.cell, mode=self.mode, hidden_size=self.hidden_size, width=self.width,
                    head_width=self.head_width, nonlinear_rtu=self.nonlinear_rtu, activation=self.activation,
                    sparsity=self.sparsity)

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
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**values)


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
            raise ConfigError(f"population members differ in {', '.join(differing)} (only {', '.join(MEMBER_FIELDS)} may)")
    return dataclasses.replace(first, population=len(members)), members
