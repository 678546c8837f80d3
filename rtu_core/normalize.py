"""Streaming input normalisation (Elsayed et al. 2024, docs/method.md §4), one set of statistics per member.

Both use Welford's running mean and variance, var = M2 / (n - 1) (1 before two samples).
- ObservationNormalizer: o ← (o - mean) / sqrt(var + ε), statistics updated with every observation
  (the reset observation included) before it is normalised.
- RewardScaler: G ← γ G + r (G reset to 0 after an episode ends); r ← r / sqrt(var(G) + ε), no centring.

The same arithmetic as gymnasium's NormalizeObservation / NormalizeReward wrappers, done in the loop rather than
inside the environments so that the loop still sees raw rewards for its episode returns. A member may have several
``lanes`` (environments feeding one agent, as batched PPO's): its statistics are updated with its lanes' rows in
lane order, and an optional ``clip`` bounds the result to ±clip (CleanRL's continuous-control PPO).
"""

from __future__ import annotations

import numpy as np


class RunningMeanVar:
    """Per-member Welford statistics of float64 vectors shaped (P, *shape). NumPy, not torch: these are a few
    tiny elementwise operations per step, where NumPy's per-call cost is a fraction of torch's."""

    def __init__(self, population: int, shape: tuple[int, ...] = ()):
        self.count = np.zeros(population)
        self.mean = np.zeros((population, *shape))
        self.m2 = np.zeros((population, *shape))

    def _col(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(-1, *([1] * (self.mean.ndim - 1)))

    def update(self, x: np.ndarray, mask: np.ndarray | None = None) -> None:
        x = np.asarray(x, dtype=np.float64)
        if mask is None:  # every member: the lines below with step = 1, fewer operations, the same rounding
            self.count += 1.0
            delta = x - self.mean
            self.mean += self._col(1.0 / self.count) * delta
            self.m2 += delta * (x - self.mean)
            return
        step = np.asarray(mask, dtype=np.float64)
        self.count += step
        delta = x - self.mean
        self.mean += self._col(step / np.maximum(self.count, 1)) * delta
        self.m2 += self._col(step) * delta * (x - self.mean)

    @property
    def var(self) -> np.ndarray:
        var = self.m2 / self._col(np.maximum(self.count - 1, 1))
        return np.where(self._col(self.count) >= 2, var, 1.0)


def per_row(stats: np.ndarray, rows: int) -> np.ndarray:
    """Per-member statistics repeated for the member's rows (rows are member-major: lane j of member i is row
    i * lanes + j); the statistics themselves when there is one row per member."""
    return stats if rows == len(stats) else np.repeat(stats, rows // len(stats), axis=0)


def clipped(x: np.ndarray, clip: float | None) -> np.ndarray:
    return x if clip is None else x.clip(-clip, clip)


class ObservationNormalizer:
    """o ← (o - mean) / sqrt(var + ε) [clipped to ±clip], running per-member statistics updated before normalising."""

    lanes, clip = 1, None  # class defaults: what checkpoints written before lanes existed mean

    def __init__(self, population: int, size: int, eps: float = 1e-8, lanes: int = 1, clip: float | None = None):
        self.stats = RunningMeanVar(population, (size,))
        self.eps = eps
        self.frozen = False
        self.lanes, self.clip = lanes, clip

    def __call__(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Update with the members' observations (those in mask, if given) unless frozen; normalise all (float64).
        Frozen, it normalises any number of rows per member (one per evaluation environment)."""
        obs = np.asarray(obs, dtype=np.float64)
        if not self.frozen:
            for lane in range(self.lanes):
                self.stats.update(obs[lane :: self.lanes], None if mask is None else mask[lane :: self.lanes])
        mean, var = per_row(self.stats.mean, len(obs)), per_row(self.stats.var, len(obs))
        return clipped((obs - mean) / np.sqrt(var + self.eps), self.clip)


class RewardScaler:
    """r ← r / sqrt(var(G) + ε) [clipped to ±clip], G the running discounted return of each lane (reset at
    episode ends)."""

    lanes, clip = 1, None  # class defaults: what checkpoints written before lanes existed mean

    def __init__(self, population: int, gamma: float, eps: float = 1e-8, lanes: int = 1, clip: float | None = None):
        self.stats = RunningMeanVar(population)
        self.gamma = gamma
        self.eps = eps
        self.discounted_return = np.zeros(population * lanes)
        self.lanes, self.clip = lanes, clip

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        reward = np.asarray(reward, dtype=np.float64)
        self.discounted_return = self.gamma * self.discounted_return + reward
        for lane in range(self.lanes):
            self.stats.update(self.discounted_return[lane :: self.lanes])
        scaled = reward / np.sqrt(per_row(self.stats.var, len(reward)) + self.eps)
        self.discounted_return = np.where(done, 0.0, self.discounted_return)
        return clipped(scaled, self.clip)
