"""P gymnasium environments stepped in lockstep, one per population member.

Written out (not gymnasium's vector envs) because the streaming loop needs the final observation of
an ending episode and a reset chosen per member at a time of its choosing; this is a few lines here
and keeps the hot loop free of info-dict merging.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np


class EnvPopulation:
    """P environments stepped in lockstep, one per population member."""

    def __init__(self, make_envs: list[Callable[[], gym.Env]], seeds: list[int]):
        self.envs = [make() for make in make_envs]
        self.seeds = seeds
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        for env in self.envs[1:]:
            if env.observation_space != self.observation_space or env.action_space != self.action_space:
                raise ValueError("all members of a population need the same observation and action spaces")

    def reset(self) -> np.ndarray:
        return np.stack([env.reset(seed=seed)[0] for env, seed in zip(self.envs, self.seeds)]).astype(np.float32)

    def reset_members(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """obs with the rows of the members in ``mask`` replaced by their reset observations."""
        obs = obs.copy()
        for i in np.flatnonzero(mask):
            obs[i] = self.envs[i].reset()[0]
        return obs

    def step(self, actions: np.ndarray):
        results = [env.step(a) for env, a in zip(self.envs, actions)]
        obs, rewards, terminated, truncated, infos = zip(*results)
        return (
            np.stack(obs).astype(np.float32),
            np.asarray(rewards, np.float64),
            np.asarray(terminated, bool),
            np.asarray(truncated, bool),
            infos,
        )

    def cue(self, member: int) -> int | None:
        """What member ``member``'s task asks it to remember now (its env's ``cue()``; None for tasks without)."""
        cue = getattr(self.envs[member].unwrapped, "cue", None)
        return None if cue is None else cue()

    def close(self) -> None:
        for env in self.envs:
            env.close()
