"""Environments: registered gymnasium ids, the tasks a config can name, and the wrappers that adapt them."""

import gymnasium as gym

from .memory_chain import TIMINGS, KMemoryChain, MemoryChain, episode_success
from .wrappers import MASKS, MaskObservation, PreviousActionReward

MEMORY_CHAIN_ID = "rtu_core/MemoryChain-v0"
if MEMORY_CHAIN_ID not in gym.registry:
    gym.register(id=MEMORY_CHAIN_ID, entry_point="rtu_core.envs.memory_chain:MemoryChain")
KMEMORY_CHAIN_ID = "rtu_core/KMemoryChain-v0"
if KMEMORY_CHAIN_ID not in gym.registry:
    gym.register(id=KMEMORY_CHAIN_ID, entry_point="rtu_core.envs.memory_chain:KMemoryChain")

# POPGym tasks of the paper (Easy difficulty), named ``popgym:<Task>`` in configs and on the command line.
POPGYM_TASKS = (
    "RepeatFirstEasy",
    "RepeatPreviousEasy",
    "CountRecallEasy",
    "AutoencodeEasy",
    "ConcentrationEasy",
    "HigherLowerEasy",
)
# Masked MuJoCo robots (gymnasium v5), named ``mujoco:<Robot>``; the mask is the config's ``mask`` field.
MUJOCO_ROBOTS = ("HalfCheetah", "Hopper", "Walker2d", "Ant")
ENV_NAMES = (
    "memory_chain",
    "kmemory_chain",
    *(f"popgym:{task}" for task in POPGYM_TASKS),
    *(f"mujoco:{robot}" for robot in MUJOCO_ROBOTS),
)


def make_env(
    name: str, *, chain_length: int = 16, num_bits: int = 1, observation_timing: str = "bsuite", mask: str = "F"
) -> gym.Env:
    """The environment an ``env`` name of ``ENV_NAMES`` stands for. ``chain_length`` is MemoryChain's L and
    KMemoryChain's k; ``num_bits`` and ``observation_timing`` apply to MemoryChain, ``mask`` to MuJoCo."""
    if name == "memory_chain":
        return gym.make(
            MEMORY_CHAIN_ID, chain_length=chain_length, num_bits=num_bits, observation_timing=observation_timing
        )
    if name == "kmemory_chain":
        return gym.make(KMEMORY_CHAIN_ID, memory_length=chain_length)
    if name.startswith("popgym:"):
        return make_popgym(name.removeprefix("popgym:"))
    if name.startswith("mujoco:"):
        return make_mujoco(name.removeprefix("mujoco:"), mask)
    raise ValueError(f"unknown env {name!r} (choose from {', '.join(ENV_NAMES)})")


def make_popgym(task: str) -> gym.Env:
    """A POPGym task with one-hot observations and the previous action and reward appended (docs/method.md §5)."""
    import popgym  # noqa: F401  (registers the popgym-* ids)

    env = gym.make(f"popgym-{task}-v0")
    return PreviousActionReward(gym.wrappers.FlattenObservation(env))


def make_mujoco(robot: str, mask: str = "F") -> gym.Env:
    """A gymnasium MuJoCo v5 robot with actions clipped to their box and the observation masked (F, P or V).
    Ant without contact forces (27 dims, as the paper). Pickles with its simulation state (for checkpoints)."""
    kwargs = {"include_cfrc_ext_in_observation": False} if robot == "Ant" else {}
    env = gym.wrappers.ClipAction(gym.make(f"{robot}-v5", **kwargs))
    return MaskObservation(env, mask)


__all__ = [
    "MUJOCO_ROBOTS",
    "MASKS",
    "MaskObservation",
    "make_env",
    "make_mujoco",
    "MemoryChain",
    "MEMORY_CHAIN_ID",
    "TIMINGS",
    "episode_success",
    "KMemoryChain",
    "KMEMORY_CHAIN_ID",
    "POPGYM_TASKS",
    "ENV_NAMES",
    "PreviousActionReward",
    "make_popgym",
]
