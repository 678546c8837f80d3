"""Environments: registered gymnasium ids, the tasks a config can name, and the wrappers that adapt them."""
import gymnasium as gym

from .memory_chain import KMemoryChain, MemoryChain
from .wrappers import MASKS, MaskObservation, PreviousActionReward

MEMORY_CHAIN_ID = "rtu_core/MemoryChain-v0"
if MEMORY_CHAIN_ID not in gym.registry:
    gym.register(id=MEMORY_CHAIN_ID, entry_point="rtu_core.envs.memory_chain:MemoryChain")
KMEMORY_CHAIN_ID = "rtu_core/KMemoryChain-v0"
if KMEMORY_CHAIN_ID not in gym.registry:
    gym.register(id=KMEMORY_CHAIN_ID, entry_point="rtu_core.envs.memory_chain:KMemoryChain")

# POPGym tasks of the paper (Easy difficulty), named ``popgym:<Task>`` in configs and on the command line.
POPGYM_TASKS = ("RepeatFirstEasy", "RepeatPreviousEasy", "CountRecallEasy", "AutoencodeEasy",
                "ConcentrationEasy", "HigherLowerEasy")
# Masked MuJoCo robots (gymnasium v5), named ``mujoco:<Robot>``; the mask is the config's ``mask`` field.
MUJOCO_ROBOTS = ("HalfCheetah", "Hopper", "Walker2d", "Ant")
ENV_NAMES = ("memory_chain", "kmemory_chain", *(f"popgym:{task}" for task in POPGYM_TASKS),
             *(f"mujoco:{robot}" for robot in MUJOCO_ROBOTS))


def make_popgym(task: str) -> gym.Env:
    """A POPGym task with one-hot observations and the previous action and reward appended (SPEC.md §5)."""
    import popgym  # noqa: F401  (registers the popgym-* ids)

    env = gym.make(f"popgym-{task}-v0")
    return PreviousActionReward(gym.wrappers.FlattenObservation(env))


def make_mujoco(robot: str, mask: str = "F") -> gym.Env:
    """A gymnasium MuJoCo v5 robot with actions clipped to their box and the observation masked (F, P or V).
    Ant without contact forces (27 dims, as the paper)."""
    kwargs = {"include_cfrc_ext_in_observation": False} if robot == "Ant" else {}
    env = gym.wrappers.ClipAction(gym.make(f"{robot}-v5", **kwargs))
    return MaskObservation(env, mask)


__all__ = ["MUJOCO_ROBOTS", "MASKS", "MaskObservation", "make_mujoco", "MemoryChain", "MEMORY_CHAIN_ID",
           "KMemoryChain", "KMEMORY_CHAIN_ID", "POPGYM_TASKS", "ENV_NAMES", "PreviousActionReward", "make_popgym"]
