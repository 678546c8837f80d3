"""Baselines that are not streaming agents but train in the same loop: batched PPO with memory networks."""

from .ppo import PPO

__all__ = ["PPO"]
