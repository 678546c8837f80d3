"""MemoryChain (bsuite ``memory_len``; Osband et al. 2020) as a gymnasium environment (SPEC.md §5).

At t = 0 the agent sees a context bit (as ±1); for t = 1 … L-1 it sees only the time left; at t = L it
sees which bit is queried and must name it: reward +1 if right, -1 if wrong, and the episode ends.
An episode is L + 1 steps. Observation (num_bits + 2 floats): [1 - t/L, query (at t = L only),
context ±1 (at t = 0 only)]. Actions: 2. Chance success rate: 0.5.

``lagged_observation=True`` reproduces the paper's JAX environment (gymnax ``MemoryChain-bsuite``), whose
``step`` returns the observation of the state *before* the step: every observation arrives one step
late, the context is seen twice (at reset and after the first step) and the query step's observation
is the one for t = L - 1. Results with it compare directly with the paper's; bsuite's is the default.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class MemoryChain(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, chain_length: int = 4, num_bits: int = 1, lagged_observation: bool = False):
        if int(chain_length) != chain_length or chain_length < 1:
            raise ValueError(f"chain_length must be an integer >= 1, got {chain_length!r}")
        if int(num_bits) != num_bits or num_bits < 1:
            raise ValueError(f"num_bits must be an integer >= 1, got {num_bits!r}")
        self.chain_length, self.num_bits = int(chain_length), int(num_bits)
        self.lagged_observation = lagged_observation
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(self.num_bits + 2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._t, self._context, self._query = 0, np.zeros(self.num_bits, np.int64), 0

    def _observation(self, t: int) -> np.ndarray:
        obs = np.zeros(self.num_bits + 2, dtype=np.float32)
        obs[0] = 1.0 - t / self.chain_length
        if t == self.chain_length:
            obs[1] = self._query
        if t == 0:
            obs[2:] = 2 * self._context - 1
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._context = self.np_random.integers(0, 2, size=self.num_bits)
        self._query = int(self.np_random.integers(0, self.num_bits))
        return self._observation(0), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        t = self._t
        if t == self.chain_length:
            success = int(action) == int(self._context[self._query])
            obs = self._observation(t)
            return obs, (1.0 if success else -1.0), True, False, {"is_success": success}
        self._t = t + 1
        return self._observation(t if self.lagged_observation else t + 1), 0.0, False, False, {}


class KMemoryChain(MemoryChain):
    """MemoryChain with K context bits recalled together (paper §4.4, the RTRL staleness study).

    At t = 0 the agent sees K context bits (as ±1); for t = 1 … L-1 only the time left; at t = L it answers
    with one of 2^K actions whose binary digits (least significant first) name the bits:

        reward = 2 · (fraction of the K bits named right) - 1 ∈ [-1, 1],   success = all K right.

    K = 1 is MemoryChain. Chance: success 2^-K, expected reward 0. This is our definition: SPEC.md names the
    task without defining it and the paper's code is not available here, so the partial credit (and recalling all
    K bits at once, rather than e.g. their majority) is a choice, not a reproduction.
    """

    def __init__(self, chain_length: int = 4, num_bits: int = 2, lagged_observation: bool = False):
        super().__init__(chain_length, num_bits, lagged_observation)
        self.action_space = gym.spaces.Discrete(2 ** self.num_bits)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self._query = 0  # every bit is recalled: no query
        return obs, info

    def step(self, action):
        if self._t < self.chain_length:
            return super().step(action)
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        named = (int(action) >> np.arange(self.num_bits)) & 1
        right = float(np.mean(named == self._context))
        return self._observation(self._t), 2 * right - 1, True, False, {"is_success": right == 1.0}
