"""Runs end cleanly, with what happened so far, on time-outs and non-finite values."""

import gymnasium as gym
import numpy as np

import rtu_core.training as training
from rtu_core import EpisodeEnd, RunEnd, TrainConfig, train


def test_time_limit_stops_with_status_timeout():
    config = TrainConfig(chain_length=3, steps=1_000_000, hidden_size=8, width=8, time_limit=2.0)
    events = list(train(config))
    end = events[-1]
    assert isinstance(end, RunEnd) and end.status == "timeout" and 0 < end.step < 1_000_000
    assert any(isinstance(e, EpisodeEnd) for e in events)


class NaNRewardAfter(gym.Wrapper):
    def __init__(self, env, after: int):
        super().__init__(env)
        self.after, self.steps = after, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, (np.nan if self.steps > self.after else reward), terminated, truncated, info


def nan_rewards_after(after: int):
    """A ``training.make_population`` whose environments' rewards turn NaN after ``after`` steps."""
    from rtu_core.envs.population import EnvPopulation

    return lambda members, seeds: EnvPopulation(
        [lambda m=m: NaNRewardAfter(training.make_env(m), after) for m in members], seeds
    )


def test_non_finite_td_error_stops_with_status_diverged(monkeypatch):
    monkeypatch.setattr(training, "make_population", nan_rewards_after(40))
    events = list(train(TrainConfig(chain_length=3, steps=1000, hidden_size=8, width=8, population=2)))
    end = events[-1]
    assert isinstance(end, RunEnd) and end.status == "diverged" and end.step == 41
    assert "non-finite" in end.message
    assert sum(isinstance(e, EpisodeEnd) for e in events) == 2 * 10
