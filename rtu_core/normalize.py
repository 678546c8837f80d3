"""Streaming input normalisation (Elsayed et al. 2024, docs/method.md §4), one set of statistics per member.

Both use Welford's running mean and variance, var = M2 / (n - 1) (1 before two samples).
- ObservationNormalizer: o ← (o - mean) / sqrt(var + ε), statistics updated with every observation
  (the reset observation included) before it is normalised.
- RewardScaler: G ← γ G + r (G reset to 0 after an episode ends); r ← r / sqrt(var(G) + ε), no centring.
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
        step = np.ones_like(self.count) if mask is None else np.asarray(mask, dtype=np.float64)
        self.count += step
        delta = x - self.mean
        self.mean += self._col(step / np.maximum(self.count, 1)) * delta
        self.m2 += self._col(step) * delta * (x - self.mean)

    @property
    def var(self) -> np.ndarray:
        var = self.m2 / self._col(np.maximum(self.count - 1, 1))
        return np.where(self._col(self.count) >= 2, var, 1.0)


class ObservationNormalizer:
    """o ← (o - mean) / sqrt(var + ε), running per-member statistics updated before normalising."""

    def __init__(self, population: int, size: int, eps: float = 1e-8):
        self.stats, self.eps, self.frozen = RunningMeanVar(population, (size,)), eps, False

    def __call__(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Update with the members' observations (those in mask, if given) unless frozen; normalise all (float64)."""
        if not self.frozen:
            self.stats.update(obs, mask)
        return (np.asarray(obs, dtype=np.float64) - self.stats.mean) / np.sqrt(self.stats.var + self.eps)


class RewardScaler:
    """r ← r / sqrt(var(G) + ε), G the running discounted return (reset at episode ends)."""

    def __init__(self, population: int, gamma: float, eps: float = 1e-8):
        self.stats, self.gamma, self.eps = RunningMeanVar(population), gamma, eps
        self.discounted_return = np.zeros(population)

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        reward = np.asarray(reward, dtype=np.float64)
        self.discounted_return = self.gamma * self.discounted_return + reward
        self.stats.update(self.discounted_return)
        scaled = reward / np.sqrt(self.stats.var + self.eps)
        self.discounted_return = np.where(done, 0.0, self.discounted_return)
        return scaled
