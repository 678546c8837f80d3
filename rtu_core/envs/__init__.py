"""Environments: registered gymnasium ids, the tasks a config can name, and the wrappers that adapt them."""
import gymnasium as gym

from .memory_chain import MemoryChain
from .wrappers import PreviousActionReward

MEMORY_CHAIN_ID = "rtu_core/MemoryChain-v0"
if MEMORY_CHAIN_ID not in gym.registry:
    gym.register(id=MEMORY_CHAIN_ID, entry_point="rtu_core.envs.memory_chain:MemoryChain")

# POPGym tasks of the paper (Easy difficulty), named ``popgym:<Task>`` in configs and on the command line.
POPGYM_TASKS = ("RepeatFirstEasy", "RepeatPreviousEasy", "CountRecallEasy", "AutoencodeEasy",
                "ConcentrationEasy", "HigherLowerEasy")
ENV_NAMES = ("memory_chain", *(f"popgym:{task}" for task in POPGYM_TASKS))


def make_popgym(task: str) -> gym.Env:
    """A POPGym task with one-hot observations and the previous action and reward appended (SPEC.md §5)."""
    import popgym  # noqa: F401  (registers the popgym-* ids)

    env = gym.make(f"popgym-{task}-v0")
    return PreviousActionReward(gym.wrappers.FlattenObservation(env))


__all__ = ["MemoryChain", "MEMORY_CHAIN_ID", "POPGYM_TASKS", "ENV_NAMES", "PreviousActionReward", "make_popgym"]
