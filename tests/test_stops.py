"""Runs end cleanly, with what happened so far, on time-outs, non-finite values and signals."""

import os
import signal

import gymnasium as gym
import numpy as np
import pytest

import rtu_core.training as training
from rtu_core import EpisodeEnd, EvaluationEnd, MemberEnd, RunEnd, TrainConfig, train
from rtu_core.results import RunRecorder
from rtu_core.stops import sigterm_as_interrupt, stop_on_signals


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


def nan_rewards_after(after: int, members_hit: tuple[int, ...] | None = None):
    """A ``training.make_population`` whose environments' rewards (of the members in ``members_hit``; all if None)
    turn NaN after ``after`` steps."""
    from rtu_core.envs import make_env
    from rtu_core.envs.population import EnvPopulation

    def make(m, i):
        env = make_env(m.env, **m.env_kwargs())
        return NaNRewardAfter(env, after) if members_hit is None or i in members_hit else env

    return lambda members, seeds, lanes=1: EnvPopulation(
        [lambda m=m, i=i: make(m, i) for i, m in enumerate(members)], seeds
    )


def test_non_finite_td_error_stops_with_status_diverged(monkeypatch):
    monkeypatch.setattr(training, "make_population", nan_rewards_after(40))
    events = list(train(TrainConfig(chain_length=3, steps=1000, hidden_size=8, width=8, population=2)))
    end = events[-1]
    assert isinstance(end, RunEnd) and end.status == "diverged" and end.step == 41
    assert "non-finite" in end.message
    assert sum(isinstance(e, EpisodeEnd) for e in events) == 2 * 10


def test_a_diverging_member_stops_and_the_others_go_on_as_their_solo_runs(monkeypatch):
    members = [TrainConfig(chain_length=3, steps=300, hidden_size=8, width=8, eval_episodes=5, seed=s) for s in (0, 1)]
    solo = [e for e in train(members[0]) if isinstance(e, (EpisodeEnd, EvaluationEnd))]
    monkeypatch.setattr(training, "make_population", nan_rewards_after(40, members_hit=(1,)))
    events = list(train(members))
    ends = [e for e in events if isinstance(e, MemberEnd)]
    assert [(e.step, e.member, e.status) for e in ends] == [(41, 1, "diverged")]
    assert isinstance(events[-1], RunEnd) and events[-1].status == "completed"
    kept = [e for e in events if isinstance(e, (EpisodeEnd, EvaluationEnd))]
    assert [e for e in kept if e.member == 0] == solo  # member 0 is its solo run, evaluation included
    assert all(e.step <= 41 for e in kept if e.member == 1) and not any(
        isinstance(e, EvaluationEnd) and e.member == 1 for e in kept
    )
    recorder = RunRecorder(members)
    for event in events:
        recorder.record(event)
    assert recorder.member_summary(0)["status"] == "completed" and recorder.member_summary(0)["eval_episodes"] == 5
    stopped = recorder.member_summary(1)
    assert stopped["status"] == "diverged" and stopped["steps"] == 41 and stopped["eval_return"] is None


def test_signals_ask_for_a_stop_and_a_later_ctrl_c_stops_at_once():
    """``stop_on_signals``: Ctrl-C or SIGTERM is recorded (the loop then stops at a step boundary); a Ctrl-C after
    either raises KeyboardInterrupt; an ignored SIGINT stays ignored; the old handlers come back."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    for first in (signal.SIGINT, signal.SIGTERM):
        with stop_on_signals() as received:
            os.kill(os.getpid(), first)
            assert received == [first]
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job
    try:
        with stop_on_signals() as received:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGINT, before[0])
    with stop_on_signals(enabled=False) as received:
        assert received == [] and signal.getsignal(signal.SIGTERM) == before[1]


def test_sigterm_as_interrupt_raises_keyboard_interrupt_and_restores_the_handler():
    """A sweep's waiting process takes SIGTERM as Ctrl-C while it waits, and only then."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before
