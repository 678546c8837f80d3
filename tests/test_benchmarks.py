"""The reproduction scripts' own bookkeeping: what a re-run of the MemoryChain sweep trains again, and that a sweep
stopped by SIGTERM continues to the numbers of one never stopped."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.memory_chain import finished, population, populations, write_results
from benchmarks.progress import report
from benchmarks.throughput import side_by_side, step_breakdown
from rtu_core import TrainConfig, train
from rtu_core.agents import QRC
from rtu_core.events import Checkpoint
from rtu_core.results import RunRecorder
from rtu_core.sweep import run_population
from rtu_core.training import Run, load_checkpoint


def test_memory_chain_sweep_skips_finished_members_and_deals_the_rest(tmp_path):
    """Finished members are skipped one by one (a longer list of chain lengths adds only the new chains), a member
    left by another setting is trained again, and the rest are dealt into one population per worker."""
    base = TrainConfig(agent="qrc", steps=60, hidden_size=4, width=4, eval_episodes=2)
    members = [dataclasses.replace(base, chain_length=L, seed=s) for L in (2, 3) for s in (0, 1)]
    write_results(tmp_path, run_population(population("rtu-rtrl", members[:2], tmp_path, 0)))  # L = 2, both seeds
    assert [finished(tmp_path, "rtu-rtrl", m) for m in members] == [True, True, False, False]
    assert not finished(tmp_path, "rtu-rtrl", dataclasses.replace(members[0], steps=80))  # another budget
    assert not finished(tmp_path, "gru-tbptt", members[0])
    assert populations("rtu-rtrl", members, tmp_path, 2) == [[members[2]], [members[3]]]
    assert populations("rtu-rtrl", members, tmp_path, 1) == [members[2:]]
    more = members + [dataclasses.replace(base, chain_length=4, seed=s) for s in (0, 1)]
    # dealt from the whole list (member i into population i mod 2), so a re-run forms the same populations
    assert populations("rtu-rtrl", more, tmp_path, 2) == [[more[2], more[4]], [more[3], more[5]]]


def test_throughput_step_breakdown_times_every_part_and_restores_them():
    """The parts of a train() step are each timed (positive), and the methods it wrapped are the originals again."""
    act, observe = QRC.act, Run.observe
    config = TrainConfig(agent="qrc", chain_length=4, hidden_size=4, width=4, steps=200, eval_episodes=0)
    parts = step_breakdown(config)
    assert set(parts) == {
        "act",
        "learn",
        "environment",
        "observation normaliser",
        "reward scaler",
        "actions to the environment",
        "rest",
    }
    assert all(us > 0 for us in parts.values()), parts
    assert QRC.act is act and Run.observe is observe


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # training subprocesses: the full tier
def test_throughput_side_by_side_times_one_run_in_each_process():
    """Two spawned processes each train the config and report a positive, finite rate of their own."""
    config = TrainConfig(agent="qrc", chain_length=4, hidden_size=4, width=4, steps=300, eval_episodes=0)
    with pytest.raises(ValueError, match="progress_every"):
        side_by_side(config, processes=1, start_in=0.0)  # one progress event: no interval to time
    config = dataclasses.replace(config, progress_every=50)
    rates = side_by_side(config, processes=2, start_in=8.0)
    assert len(rates) == 2 and all(0 < rate < float("inf") for rate in rates), rates


@pytest.mark.slow  # training subprocesses: the full tier
def test_memory_chain_sweep_stopped_by_sigterm_continues_to_the_uninterrupted_numbers(tmp_path):
    """The MemoryChain sweep as the reproduction runs it: SIGTERM to its process group mid-run stops it with its
    checkpoint kept and nothing finished written (exit 130); the same command then continues, and every member's
    episodes and evaluation equal those of a sweep that was never stopped."""
    command = [sys.executable, "benchmarks/memory_chain.py", "--lengths", "2", "3", "--methods", "rtu-rtrl"]
    command += ["--seeds", "2", "--steps", "6000", "--hidden-size", "4", "--width", "4", "--eval-episodes", "3"]
    command += ["--workers", "1", "--checkpoint-every", "500"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    whole, split = tmp_path / "whole", tmp_path / "split"
    subprocess.run([*command, "--out", str(whole)], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)

    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:  # a file, not a pipe: a pipe nobody reads can fill and block the writer
        sweep = subprocess.Popen(
            [*command, "--out", str(split)], cwd=ROOT, env=env, start_new_session=True, stderr=stderr
        )
    deadline = time.time() + 300
    while not list((split / "rtu-rtrl" / "checkpoints").glob("*.pt")):
        assert sweep.poll() is None and time.time() < deadline, "no checkpoint was written"
        time.sleep(0.2)
    os.killpg(sweep.pid, signal.SIGTERM)
    try:
        assert sweep.wait(timeout=120) == 130, errors.read_text()[-2000:]
    finally:  # a sweep that hangs is not left running
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    assert "the same command continues" in errors.read_text()
    assert not list(split.glob("rtu-rtrl/L*/seed_*/episodes.csv"))  # stopped before any member finished
    (checkpoint,) = (split / "rtu-rtrl" / "checkpoints").glob("*.pt")
    stopped_at = load_checkpoint(checkpoint)["loop"]["step"]
    assert 0 < stopped_at < 6000
    again = subprocess.run(
        [*command, "--out", str(split)], cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=600
    )
    # it continued from the checkpoint: it trained the steps after it only, and the finished population's
    # checkpoint is gone
    assert f"{4 * (6000 - stopped_at):,}/24,000 agent-steps" in again.stdout, again.stdout
    assert not checkpoint.exists()

    for member in sorted(whole.glob("rtu-rtrl/L*/seed_*")):
        resumed = split / member.relative_to(whole)
        assert (member / "episodes.csv").read_text() == (resumed / "episodes.csv").read_text(), member
        first, second = (json.loads((folder / "summary.json").read_text()) for folder in (member, resumed))
        assert {k: v for k, v in first.items() if k not in ("steps_per_second", "wall_seconds")} == {
            k: v for k, v in second.items() if k not in ("steps_per_second", "wall_seconds")
        }
    assert len(list(whole.glob("rtu-rtrl/L*/seed_*"))) == 4


def test_progress_reports_finished_runs_and_the_step_of_each_checkpoint(tmp_path):
    """The reproduction's progress: finished runs by status, and each population under way with its step."""
    base = TrainConfig(agent="qrc", steps=60, hidden_size=4, width=4, eval_episodes=2)
    members = [dataclasses.replace(base, chain_length=2, seed=s) for s in (0, 1)]
    write_results(tmp_path, run_population(population("rtu-rtrl", members, tmp_path, 0)))  # two finished runs
    under_way = [dataclasses.replace(base, steps=400, taylor_sensitivity=True, seed=s) for s in (0, 1, 2)]
    for event in train(under_way, checkpoint_every=100):
        if isinstance(event, Checkpoint) and event.step == 200:
            (tmp_path / "rtu-rtrl" / "checkpoints").mkdir(parents=True)
            event.save(tmp_path / "rtu-rtrl" / "checkpoints" / "population.pt")
            break
    assert report(tmp_path).splitlines() == [
        f"{tmp_path}: runs finished: 2 completed",
        "  under way: qrc, rtu-rtrl, Taylor-corrected, 3 members at step 200 of 400 (50%; "
        "rtu-rtrl/checkpoints/population.pt)",
    ]
    assert report(tmp_path / "absent") == f"{tmp_path / 'absent'}: not started"
    damaged = tmp_path / "rtu-rtrl" / "checkpoints" / "damaged.pt"
    damaged.write_bytes(b"cut short")
    assert report(tmp_path).splitlines()[1].startswith(f"  damaged: {damaged} is not a readable checkpoint (")


def test_staleness_study_runs_one_correction_alone_then_adds_the_other_to_its_folder(tmp_path):
    """``--corrections taylor`` trains the corrected runs alone; the same command with both corrections into the same
    folder trains only the plain runs, and the table then has both."""
    command = [sys.executable, "benchmarks/staleness.py", "--steps", "120", "--seeds", "1", "--k", "4"]
    command += ["--agents", "qrc", "--hidden-size", "4", "--width", "4", "--measure-every", "13", "--workers", "1"]
    command += ["--checkpoint-every", "0", "--out", str(tmp_path)]
    root = Path(__file__).resolve().parents[1]
    taylor = subprocess.run(command + ["--corrections", "taylor"], cwd=root, capture_output=True, text=True)
    assert taylor.returncode == 0, taylor.stderr
    assert "1 runs trained, 0 already finished" in taylor.stdout
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "agent=qrc,taylor_sensitivity=True,chain_length=4,seed=0"
    ]
    both = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert both.returncode == 0, both.stderr
    assert "1 runs trained, 1 already finished" in both.stdout
    assert json.loads((tmp_path / "sweep.json").read_text())["axes"]["taylor_sensitivity"] == [True, False]
    table = (tmp_path / "summary.md").read_text()
    assert "| qrc | True | 4 | 1 |" in table and "| qrc | False | 4 | 1 |" in table


def test_learning_curves_average_each_window_over_seeds_and_mark_where_epsilon_ends(tmp_path):
    """benchmarks/curves.py on real run folders: a run's window is the mean of its episodes ending in it, a line
    the mean ± s.e. over its runs; QRC panels carry the step where ε reaches its end; bad input: one line, exit 2."""
    from benchmarks.curves import CurvesError, curves, markdown, read_runs, windowed_curve

    config = TrainConfig(agent="qrc", chain_length=2, steps=90, hidden_size=4, width=4, eval_episodes=0, population=2)
    recorder = RunRecorder(config)
    for event in train(config):
        recorder.record(event)
    recorder.write(tmp_path)  # seed_0/ and seed_1/, each with config.json and episodes.csv
    runs = read_runs([tmp_path])
    assert len(runs) == 2
    result = curves(runs, "chain_length", ["agent", "mode"], "return", 30)
    assert list(result["table"]) == [2] and list(result["table"][2]) == ["qrc, rtrl"]
    expected = []
    for k in range(3):  # episodes of 3 steps end at steps 3, 6, ..., 90: ten in each 30-step window
        values = [
            np.mean([float(r["return"]) for r in rows if k * 30 < int(r["step"]) <= (k + 1) * 30])
            for _, rows, _ in runs
        ]
        expected.append((np.mean(values), np.std(values, ddof=1) / np.sqrt(2)))
    assert np.allclose(result["table"][2]["qrc, rtrl"], expected)
    assert result["exploration_end"] == {2: 0.1 * 90}
    assert markdown(result, 30, "chain_length").splitlines()[0] == "| chain_length | line | 30 | 60 | 90 |"
    with pytest.raises(CurvesError, match="no column 'reward'"):
        curves(runs, "chain_length", ["agent"], "reward", 30)
    for episodes in tmp_path.rglob("episodes.csv"):  # as committed: curve.csv alone
        episodes.unlink()
    from_curves = curves(read_runs([tmp_path]), "chain_length", ["agent", "mode"], "return", 30)
    assert np.allclose(from_curves["table"][2]["qrc, rtrl"], expected)
    with pytest.raises(CurvesError, match="not a multiple of the curve.csv windows"):
        windowed_curve([{"step": "40", "episodes": "1", "return": "6.0"}], "return", 30, 4000)
    empty = subprocess.run(
        [sys.executable, "benchmarks/curves.py", str(tmp_path / "seed_0" / "absent")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert empty.returncode == 2 and empty.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'seed_0' / 'absent'} is not a folder"
    ]


def test_qrc_probe_records_every_learning_step_and_restores_the_agent_registry():
    """benchmarks/qrc_probe.py: one row per window, each the mean of that window's steps; the QRC class the loop
    builds is the library's again afterwards."""
    from benchmarks.qrc_probe import Recording, probe
    from rtu_core import training

    config = TrainConfig(agent="qrc", chain_length=3, steps=200, hidden_size=4, width=4, eval_episodes=0)
    rows = probe(config, 50)
    agent = Recording.built[0]
    assert agent.engine == "native"  # the class the run's engine computes with, recording
    assert [row["step"] for row in rows] == [50, 100, 150, 200]
    assert len(agent.q_taken) == len(agent.td_errors) == 200
    assert rows[1]["Q"] == pytest.approx(np.mean(agent.q_taken[50:100]))
    assert rows[3]["delta"] == pytest.approx(np.mean(agent.td_errors[150:]))
    assert training.LEARNERS["qrc"] is QRC
