"""The paper's settings per task family and agent (``docs/method.md`` §7), applied by ``TrainConfig`` itself.

A ``TrainConfig`` field left at ``None`` takes its value from ``PRESETS[(family, agent)]``, else from
``BASE[agent]``, else from ``BASE["*"]``; a value the user sets is kept. So the CLI, the lab, the benchmarks and
``train(TrainConfig(...))`` give the same run for the same task, and ``config.json`` records what was used.
Entries marked "ours" are not in the paper (it does not run that agent on that task): they are the stream-x
defaults of the agent.
"""

from __future__ import annotations

# Fields a preset may set. Every one of them defaults to None in TrainConfig.
PRESET_FIELDS = (
    "width",
    "feature_layers",
    "head_width",
    "activation",
    "trace_decay",
    "kappa_actor",
    "kappa_critic",
    "entropy_coeff",
    "exploration_fraction",
    "grad_clip",
    "ppo_num_envs",
    "ppo_rollout_steps",
)

# What an agent uses where no task preset says otherwise (stream-x / the paper's base settings, §4).
BASE = {
    "*": dict(
        width=128,
        feature_layers=1,
        head_width=0,
        activation="leaky_relu",
        trace_decay=0.8,
        kappa_actor=1.5,
        kappa_critic=1.0,
        entropy_coeff=0.01,
        exploration_fraction=0.1,
        grad_clip=0.0,
        ppo_num_envs=32,
        ppo_rollout_steps=64,
    ),
    "qrc": dict(trace_decay=0.95),
}

_POPGYM_NET = dict(width=64, head_width=64)  # Dense 64 -> LN -> leaky ReLU | RTU | Dense 64 -> LN -> leaky ReLU
_MUJOCO_NET = dict(width=64, head_width=64, activation="tanh")

PRESETS: dict[tuple[str, str], dict] = {
    # §4.1: QRC(λ) is the only agent the paper runs on MemoryChain
    ("memory_chain", "qrc"): dict(width=128, trace_decay=0.95, exploration_fraction=0.1, grad_clip=0.0),
    ("memory_chain", "stream_ac"): dict(width=128),  # ours
    # §4.4: QRC with one feature block, Stream AC with two; λ 0.95 for both
    ("kmemory_chain", "qrc"): dict(width=128, feature_layers=1, trace_decay=0.95),
    ("kmemory_chain", "stream_ac"): dict(
        width=128, feature_layers=2, trace_decay=0.95, kappa_actor=1.5, kappa_critic=1.0, entropy_coeff=0.01
    ),
    # §4.2
    ("popgym", "stream_ac"): dict(
        **_POPGYM_NET, trace_decay=0.8, kappa_actor=3.0, kappa_critic=2.0, entropy_coeff=0.095
    ),
    ("popgym", "qrc"): dict(**_POPGYM_NET, trace_decay=0.95, grad_clip=1.0, exploration_fraction=0.2),
    ("popgym", "ppo"): dict(**_POPGYM_NET, ppo_num_envs=32, ppo_rollout_steps=64),
    # §4.3 (Brax in the paper; gymnasium MuJoCo here)
    ("mujoco", "stream_ac"): dict(**_MUJOCO_NET, kappa_actor=1.5, kappa_critic=1.0, entropy_coeff=0.01),
    ("mujoco", "ppo"): dict(**_MUJOCO_NET, ppo_num_envs=1, ppo_rollout_steps=2048),
}


def task_family(env: str) -> str:
    """``memory_chain``, ``kmemory_chain``, ``popgym`` or ``mujoco`` for an env name of ``ENV_NAMES``."""
    return env.split(":", 1)[0]


def preset(env: str, agent: str) -> dict:
    """Every PRESET_FIELDS value for ``agent`` on ``env``: the task preset over the agent's base over the base."""
    return {**BASE["*"], **BASE.get(agent, {}), **PRESETS.get((task_family(env), agent), {})}
