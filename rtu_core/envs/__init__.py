"""Environments: registered gymnasium ids, and the population of environments the training loop steps."""
import gymnasium as gym

from .memory_chain import MemoryChain

MEMORY_CHAIN_ID = "rtu_core/MemoryChain-v0"
if MEMORY_CHAIN_ID not in gym.registry:
    gym.register(id=MEMORY_CHAIN_ID, entry_point="rtu_core.envs.memory_chain:MemoryChain")

__all__ = ["MemoryChain", "MEMORY_CHAIN_ID"]
