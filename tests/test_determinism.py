"""Same config + seed -> same numbers; population member i == the same seed run alone."""

import dataclasses

import pytest

from rtu_core import TrainConfig, train
from rtu_core.results import RunRecorder

SMALL = dict(chain_length=3, steps=600, hidden_size=8, width=8, eval_episodes=5)


def record(config) -> RunRecorder:
    recorder = RunRecorder(config)
    for event in train(config):
        recorder.record(event)
    return recorder


@pytest.mark.parametrize(
    "agent,cell,mode",
    [("stream_ac", "rtu", "rtrl"), ("qrc", "rtu", "rtrl"), ("stream_ac", "gru", "tbptt"), ("qrc", "ffn", "tbptt")],
)
def test_same_seed_same_episodes(agent, cell, mode):
    config = TrainConfig(agent=agent, cell=cell, mode=mode, seed=3, **SMALL)
    a, b = record(config), record(config)
    assert a.episodes_csv(0) == b.episodes_csv(0)
    assert a.member_summary(0)["eval_return"] == b.member_summary(0)["eval_return"]
    c = record(dataclasses.replace(config, seed=4))
    assert c.episodes_csv(0) != a.episodes_csv(0)


@pytest.mark.parametrize("agent", ["stream_ac", "qrc"])
@pytest.mark.parametrize("engine", ["auto", "eager"])  # the native step on the CPU, and the PyTorch step
def test_population_member_equals_solo_run(agent, engine):
    population = record(TrainConfig(agent=agent, engine=engine, seed=10, population=3, **SMALL))
    for i in range(3):
        solo = record(TrainConfig(agent=agent, engine=engine, seed=10 + i, **SMALL))
        assert population.episodes_csv(i) == solo.episodes_csv(0)
        assert population.evaluations[i].returns == solo.evaluations[0].returns


def test_mixed_population_of_chain_lengths_equals_solo_runs():
    base = TrainConfig(**SMALL)
    members = [dataclasses.replace(base, seed=s, chain_length=L) for L, s in [(2, 0), (5, 1), (9, 0)]]
    population = record(members)
    for i, member in enumerate(members):
        assert population.episodes_csv(i) == record(member).episodes_csv(0)
    assert [r["chain_length"] for r in population.summary()["runs"]] == [2, 5, 9]
