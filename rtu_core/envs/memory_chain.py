"""MemoryChain (bsuite ``memory_len``, Osband et al. 2020) and the paper's KMemoryChain as gymnasium environments.

Both follow bsuite's observation timing (``docs/method.md`` §5): ``step`` returns the observation of the state
*before* time advances, so every observation arrives one step after the state it describes. bsuite, gymnax
(``MemoryChain-bsuite``) and the paper all use this timing.
"""

from __future__ import annotations

from types import MappingProxyType

import gymnasium as gym
import numpy as np

TIMINGS = ("bsuite", "immediate")


def _check_length(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def episode_success(info: dict) -> float | None:
    """The fraction of an ended episode's rewarded decisions that were right (MemoryChain: 1.0 or 0.0; None for
    tasks without a success measure)."""
    if "success_rate" in info:
        return float(info["success_rate"])
    if "is_success" in info:
        return float(info["is_success"])
    return None


def observations(time, chain_length, query_time, query, context) -> np.ndarray:
    """MemoryChain observations ``[1 - t/L, query if t = query time, context (±1) if t = 0]`` (float32), one row per
    element of ``time`` (arrays broadcast; ``context`` is (n, num_bits))."""
    time = np.asarray(time)
    obs = np.zeros((len(time), context.shape[1] + 2), dtype=np.float32)
    obs[:, 0] = 1.0 - time / chain_length
    obs[:, 1] = np.where(time == query_time, query, 0)
    obs[:, 2:] = np.where((time == 0)[:, None], 2 * context - 1, 0)
    return obs


class MemoryChain(gym.Env):
    """bsuite's MemoryChain: remember a context bit for L steps, then name it.

    Observation ``[1 - t/L, query, context]`` (num_bits + 2 floats) of the state at time t: the query index is
    shown at t = L - 1, the context bits (as ±1) at t = 0, zeros otherwise. Actions: 2. Reward 0 until the
    (L + 1)-th action, which ends the episode with +1 if it names ``context[query]`` and -1 otherwise. Success =
    that last reward is +1 (chance 0.5).

    ``observation_timing="bsuite"`` (the default, bsuite's and the paper's task): ``step`` at time t returns the
    observation of time t (built before the time advances). The agent sees the context at reset *and* after its
    first action, and the query in the observation it answers from (that of t = L - 1).
    ``observation_timing="immediate"``: ``step`` returns the observation of the new time t + 1, with the query
    shown at t = L. The context is seen once and the gap to the answer is one step longer: a strictly harder
    task, not the one the paper reports.
    """

    metadata = {"render_modes": []}

    def __init__(self, chain_length: int = 4, num_bits: int = 1, observation_timing: str = "bsuite"):
        self.chain_length = _check_length("chain_length", chain_length)
        self.num_bits = _check_length("num_bits", num_bits)
        if observation_timing not in TIMINGS:
            raise ValueError(f"observation_timing must be one of {', '.join(TIMINGS)}, got {observation_timing!r}")
        self.observation_timing = observation_timing
        # the time at whose observation the query index is shown: the one the answer is chosen from
        self._query_time = self.chain_length - 1 if observation_timing == "bsuite" else self.chain_length
        low = np.array([0.0, 0.0] + [-1.0] * self.num_bits, dtype=np.float32)
        high = np.array([1.0, max(self.num_bits - 1, 1)] + [1.0] * self.num_bits, dtype=np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._t, self._context, self._query = 0, np.zeros(self.num_bits, np.int64), 0

    def _observation(self, t: int) -> np.ndarray:
        return observations(np.array([t]), self.chain_length, self._query_time, self._query, self._context[None])[0]

    def cue(self) -> int:
        """The bit this episode asks for: ``context[query]`` (what the memory must hold)."""
        return int(self._context[self._query])

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
        self._t = t + 1
        # bsuite: the observation of time t; immediate: of t + 1 (the last one stays at t = L)
        obs = self._observation(t if self.observation_timing == "bsuite" else min(t + 1, self.chain_length))
        if t < self.chain_length:
            return obs, 0.0, False, False, {}
        success = int(action) == int(self._context[self._query])
        return obs, (1.0 if success else -1.0), True, False, {"is_success": success}


class KMemoryChain(gym.Env):
    """The paper's KMemoryChain (§4.4): a continuing recall of the bit seen k steps back.

    State: the last k + 1 bits (oldest first) and the time. Reset: zeros, with a fresh Bernoulli(½) bit as the
    newest entry. Observation ``[2 b_newest - 1, 1 - time/T]`` with bsuite's timing (the observation of the state
    before the step, so the first bit is seen twice), T = ``horizons`` · k steps per episode. Each action (2 of
    them) is scored against the *oldest* bit of the history: reward 0 during the warm-up (time < k), then +1 if
    right and -1 if wrong; then the history shifts by one fresh bit. So (horizons - 1) · k rewarded decisions per
    episode, return in [-(horizons-1)k, (horizons-1)k], chance return 0. Success of an episode = the fraction of
    its rewarded decisions that were right (chance 0.5), reported as ``info["success_rate"]`` at its end.
    """

    metadata = {"render_modes": []}

    def __init__(self, memory_length: int = 4, horizons: int = 8):
        self.memory_length = _check_length("memory_length", memory_length)
        self.horizons = _check_length("horizons", horizons)
        if self.horizons < 2:
            raise ValueError(f"horizons must be >= 2 (one horizon is the warm-up), got {horizons!r}")
        self.episode_steps = self.horizons * self.memory_length
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._history = np.zeros(self.memory_length + 1, np.int64)
        self._time, self._correct = 0, 0

    def _observation(self) -> np.ndarray:
        return np.array([2 * self._history[-1] - 1, 1.0 - self._time / self.episode_steps], dtype=np.float32)

    def cue(self) -> int:
        """The bit the next action is scored against: the oldest of the history, seen k steps back."""
        return int(self._history[0])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._history = np.zeros(self.memory_length + 1, np.int64)
        self._history[-1] = self.np_random.integers(0, 2)
        self._time, self._correct = 0, 0
        return self._observation(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        obs = self._observation()  # built before the time advances (bsuite's timing)
        reward = 0.0
        if self._time >= self.memory_length:
            right = int(action) == int(self._history[0])
            self._correct += right
            reward = 1.0 if right else -1.0
        self._history = np.roll(self._history, -1)
        self._history[-1] = self.np_random.integers(0, 2)
        self._time += 1
        if self._time < self.episode_steps:
            return obs, reward, False, False, {}
        decisions = self.episode_steps - self.memory_length
        return obs, reward, True, False, {"success_rate": self._correct / decisions}


NO_INFO = MappingProxyType({})


class MemoryChainPopulation:
    """P MemoryChains stepped as one batch in NumPy: the same numbers as P ``MemoryChain`` environments from
    ``gym.make`` seeded alike (each member keeps its own generator, seeded as gymnasium seeds an env), without P
    Python calls per step. Members may differ in chain length and observation timing. The interface is
    ``EnvPopulation``'s."""

    def __init__(self, chain_lengths, observation_timings, seeds: list[int], num_bits: int = 1):
        envs = [MemoryChain(L, num_bits, timing) for L, timing in zip(chain_lengths, observation_timings)]
        self.observation_space, self.action_space = envs[0].observation_space, envs[0].action_space
        self.chain_length = np.array([env.chain_length for env in envs])
        self.query_time = np.array([env._query_time for env in envs])
        self.bsuite = np.array([timing == "bsuite" for timing in observation_timings])
        self.seeds, self.num_bits = seeds, num_bits
        P = len(envs)
        self.time = np.zeros(P, np.int64)
        self.context = np.zeros((P, num_bits), np.int64)
        self.query = np.zeros(P, np.int64)
        self.generators: list[np.random.Generator] = []

    def _draw(self, i: int) -> None:
        """A new episode for member i: the draws of ``MemoryChain.reset``, in its order."""
        self.time[i] = 0
        self.context[i] = self.generators[i].integers(0, 2, size=self.num_bits)
        self.query[i] = int(self.generators[i].integers(0, self.num_bits))

    def _observations(self, time: np.ndarray) -> np.ndarray:
        return observations(time, self.chain_length, self.query_time, self.query, self.context)

    def reset(self) -> np.ndarray:
        self.generators = [gym.utils.seeding.np_random(seed)[0] for seed in self.seeds]
        for i in range(len(self.seeds)):
            self._draw(i)
        return self._observations(self.time)

    def reset_members(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """obs with the rows of the members in ``mask`` replaced by their reset observations."""
        members = np.flatnonzero(mask)
        for i in members:
            self._draw(i)
        obs = obs.copy()
        obs[members] = self._observations(self.time)[members]
        return obs

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions)
        valid = (actions == 0) | (actions == 1)  # np.isin's set machinery costs more than the whole step
        if not valid.all():
            raise ValueError(f"invalid actions {actions[~valid]!r} for {self.action_space}")
        t = self.time.copy()
        self.time += 1
        # bsuite: the observation of time t; immediate: of t + 1 (the last one stays at t = L)
        obs = self._observations(np.where(self.bsuite, t, np.minimum(t + 1, self.chain_length)))
        terminated = t >= self.chain_length
        success = actions == self.context[np.arange(len(t)), self.query]
        rewards = np.where(terminated, np.where(success, 1.0, -1.0), 0.0)
        infos = [NO_INFO] * len(t)
        for i in np.flatnonzero(terminated):
            infos[i] = {"is_success": bool(success[i])}
        return obs, rewards, terminated, np.zeros_like(terminated), infos

    def cue(self, member: int) -> int:
        """The bit member ``member``'s episode asks for (``MemoryChain.cue``)."""
        return int(self.context[member, self.query[member]])

    def close(self) -> None:
        pass
