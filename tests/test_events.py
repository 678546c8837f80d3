"""The event stream carries what the app and notebooks draw."""

import numpy as np
import pytest

from rtu_core import EpisodeEnd, EvaluationEnd, Progress, RunEnd, Snapshot, TrainConfig, train


@pytest.mark.parametrize("agent,networks", [("stream_ac", ("actor", "critic")), ("qrc", ("q", "h"))])
def test_snapshots_progress_and_order(agent, networks):
    config = TrainConfig(
        agent=agent,
        chain_length=4,
        steps=200,
        hidden_size=6,
        width=5,
        population=2,
        snapshot_every=50,
        snapshot_window=30,
        progress_every=100,
        eval_episodes=3,
    )
    events = list(train(config))
    snapshots = [e for e in events if isinstance(e, Snapshot)]
    assert [s.step for s in snapshots] == [50, 100, 150, 200]
    last = snapshots[-1]
    for name in networks:
        assert last.hidden[name].shape == (30, 6) and np.iscomplexobj(last.hidden[name])
        lam = last.eigenvalues[name]
        assert lam.shape == (2, 6) and np.all(np.abs(lam) < 1)
        assert set(last.sensitivity_norms[name]) == {"nu_log", "theta_log", "B_real", "B_imag"}
        assert last.trace_norms[name].shape == (2,)
    # time within the episode runs 0..L and restarts
    assert set(last.episode_time.tolist()) == set(range(5))
    assert [e.step for e in events if isinstance(e, Progress)] == [100, 200]
    assert sum(isinstance(e, EpisodeEnd) for e in events) == 2 * 40
    kinds = [type(e) for e in events]
    assert kinds[-1] is RunEnd and events[-1].status == "completed"
    assert kinds[-3:-1] == [EvaluationEnd, EvaluationEnd]


def test_gru_snapshot_has_real_hidden_state_and_no_eigenvalues():
    config = TrainConfig(
        cell="gru",
        mode="tbptt",
        chain_length=2,
        steps=20,
        hidden_size=4,
        width=5,
        snapshot_every=20,
        snapshot_window=8,
        eval_episodes=0,
    )
    snapshot = next(e for e in train(config) if isinstance(e, Snapshot))
    assert snapshot.hidden["actor"].shape == (8, 4) and not np.iscomplexobj(snapshot.hidden["actor"])
    assert snapshot.eigenvalues == {} and snapshot.sensitivity_norms == {"actor": {}, "critic": {}}
