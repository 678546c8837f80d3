"""Streaming input normalisation (Elsayed et al. 2024, SPEC.md §4), one set of statistics per member.

Both use Welford's running mean and variance, var = M2 / (n - 1) (1 before two samples).
- ObservationNormalizer: o ← (o - mean) / sqrt(var + ε), statistics updated with every observation
  (the reset observation included) before it is normalised.
- RewardScaler: G ← γ G + r (G reset to 0 after an episode ends); r ← r / sqrt(var(G) + ε), no centring.
"""
from __future__ import annotations

import torch
from torch import Tensor


class RunningMeanVar:
    """Per-member Welford statistics of vectors shaped (P, *shape)."""

    def __init__(self, population: int, shape: tuple[int, ...] = (), dtype=torch.float32):
        self.count = torch.zeros(population, dtype=torch.float64)
        self.mean = torch.zeros(population, *shape, dtype=torch.float64)
        self.m2 = torch.zeros(population, *shape, dtype=torch.float64)
        self.dtype = dtype

    def _col(self, t: Tensor) -> Tensor:
        return t.view(-1, *([1] * (self.mean.dim() - 1)))

    def update(self, x: Tensor, mask: Tensor | None = None) -> None:
        x = x.to(torch.float64)
        step = torch.ones_like(self.count) if mask is None else mask.to(torch.float64)
        self.count += step
        delta = x - self.mean
        self.mean += self._col(step / self.count.clamp(min=1)) * delta
        self.m2 += self._col(step) * delta * (x - self.mean)

    @property
    def var(self) -> Tensor:
        var = self.m2 / self._col((self.count - 1).clamp(min=1))
        return torch.where(self._col(self.count) >= 2, var, torch.ones_like(var))


class ObservationNormalizer:
    def __init__(self, population: int, size: int, eps: float = 1e-8):
        self.stats, self.eps, self.frozen = RunningMeanVar(population, (size,)), eps, False

    def __call__(self, obs: Tensor, mask: Tensor | None = None) -> Tensor:
        """Update with the members' observations (those in mask, if given) unless frozen; normalise all."""
        if not self.frozen:
            self.stats.update(obs, mask)
        out = (obs.to(torch.float64) - self.stats.mean) / torch.sqrt(self.stats.var + self.eps)
        return out.to(obs.dtype)


class RewardScaler:
    def __init__(self, population: int, gamma: float, eps: float = 1e-8):
        self.stats, self.gamma, self.eps = RunningMeanVar(population), gamma, eps
        self.discounted_return = torch.zeros(population, dtype=torch.float64)

    def __call__(self, reward: Tensor, done: Tensor) -> Tensor:
        self.discounted_return = self.gamma * self.discounted_return + reward.to(torch.float64)
        self.stats.update(self.discounted_return)
        scaled = reward.to(torch.float64) / torch.sqrt(self.stats.var + self.eps)
        self.discounted_return = self.discounted_return.masked_fill(done, 0.0)
        return scaled.to(reward.dtype)
