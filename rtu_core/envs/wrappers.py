"""Gymnasium wrappers that adapt the paper's tasks to the streaming agents (docs/method.md §5).

- ``FlattenObservation`` (gymnasium's own) turns Discrete / MultiDiscrete / Tuple observations into one-hot
  vectors: ``spaces.flatten`` one-hot encodes every discrete part.
- ``PreviousActionReward`` appends the one-hot previous action and the previous reward, as the paper feeds
  POPGym agents: o'_t = [o_t, onehot(a_{t-1}), r_{t-1}], with zeros at the first step of an episode.
  It also hands out a fresh copy of ``info`` (POPGym's CountRecall mutates one array in place, which
  gymnasium's ``check_env`` rightly rejects).
- ``MaskObservation`` keeps the positions (P) or velocities (V) of a MuJoCo observation, or all of it (F).
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np


class PreviousActionReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """o'_t = [o_t, onehot(a_{t-1}), r_{t-1}] (zeros at an episode's first step), as the paper feeds POPGym agents."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"PreviousActionReward needs a Discrete action space, got {env.action_space}")
        if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
            raise ValueError("PreviousActionReward needs a flat Box observation (wrap in FlattenObservation first)")
        self.n_actions = int(env.action_space.n)
        low = np.concatenate([env.observation_space.low, np.zeros(self.n_actions), [-np.inf]]).astype(np.float32)
        high = np.concatenate([env.observation_space.high, np.ones(self.n_actions), [np.inf]]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def _observation(self, obs: np.ndarray, action: int | None, reward: float) -> np.ndarray:
        previous = np.zeros(self.n_actions + 1, dtype=np.float32)
        if action is not None:
            previous[int(action)] = 1.0
        previous[-1] = reward
        return np.concatenate([np.asarray(obs, np.float32), previous])

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._observation(obs, None, 0.0), copy.deepcopy(info)  # CountRecall mutates one info array

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(obs, action, float(reward)), reward, terminated, truncated, copy.deepcopy(info)


MASKS = ("F", "P", "V")


class MaskObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """o'_t = m ⊙ o_t for a gymnasium MuJoCo (v5) robot (docs/method.md §5): ``F`` keeps everything, ``P`` only the
    joint positions (qpos part), ``V`` only the velocities (qvel part). The parts are read from the model's
    ``observation_structure`` (qpos dims first, then qvel, then e.g. contact forces, which P and V both drop)."""

    def __init__(self, env: gym.Env, mode: str = "F"):
        if mode not in MASKS:
            raise ValueError(f"mask must be one of {', '.join(MASKS)}, got {mode!r}")
        gym.utils.RecordConstructorArgs.__init__(self, mode=mode)
        gym.ObservationWrapper.__init__(self, env)
        structure = env.unwrapped.observation_structure
        positions, velocities = structure["qpos"], structure["qvel"]
        self.mask = np.ones(env.observation_space.shape, dtype=env.observation_space.dtype)
        if mode == "P":
            self.mask[positions:] = 0
        elif mode == "V":
            self.mask[:positions] = 0
            self.mask[positions + velocities :] = 0
        self.mode = mode

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation * self.mask
