"""Per-member random streams: member i of a population draws exactly what the same seed draws alone.

Each member owns a ``torch.Generator``; values are drawn in blocks per member and served column by
column, so a step costs one tensor slice for the whole population instead of P generator calls.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def member_seeds(seed: int, streams: int) -> list[int]:
    """Independent 63-bit seeds for the named streams of one run (initialisation, actions, envs, ...)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(streams, dtype=np.uint64) >> 1]


class MemberRandom:
    """Per-member uniform and normal draws in blocks: member i draws what the same seed draws alone.
    Drawn on the CPU (the same numbers on every device) and handed out on ``device``."""

    def __init__(self, seeds: list[int], block: int = 4096, dtype=torch.float32, device: str = "cpu"):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.block = block
        self.dtype = dtype
        self.device = device
        self._uniform = torch.empty(len(seeds), 0, dtype=dtype)
        self._normal = torch.empty(len(seeds), 0, dtype=dtype)
        self._served = {"_uniform": 0, "_normal": 0}  # columns of each pool already handed out

    def _take(self, name: str, count: int, sampler) -> Tensor:
        pool: Tensor = getattr(self, name)
        start = self._served[name]
        if pool.shape[1] - start < count:
            fresh = torch.stack(
                [sampler(max(self.block, count), generator=g, dtype=self.dtype) for g in self.generators]
            )
            pool, start = torch.cat((pool[:, start:], fresh), dim=1), 0
            setattr(self, name, pool)
        self._served[name] = start + count
        drawn = pool[:, start : start + count]
        return drawn if self.device == "cpu" else drawn.to(self.device)

    def uniform(self, count: int = 1) -> Tensor:
        """(P, count) samples from U[0, 1)."""
        return self._take("_uniform", count, torch.rand)

    def normal(self, count: int = 1) -> Tensor:
        """(P, count) samples from N(0, 1)."""
        return self._take("_normal", count, torch.randn)
