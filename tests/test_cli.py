"""The CLI as a user runs it: a subprocess, its exit status, its files."""

import csv
import json
import signal
import subprocess
import sys
import threading
import time

import pytest

TINY = ["--chain-length", "3", "--steps", "300", "--hidden-size", "8", "--width", "8", "--eval-episodes", "5"]


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rtu_core", *args], capture_output=True, text=True, timeout=300, **kwargs
    )


def test_train_writes_config_episodes_and_summary(tmp_path):
    out = tmp_path / "run"
    result = cli(
        "train",
        "--env",
        "memory_chain",
        "--agent",
        "stream_ac",
        "--cell",
        "rtu",
        "--mode",
        "rtrl",
        "--seed",
        "1",
        "--out",
        str(out),
        *TINY,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "curve.csv", "episodes.csv", "summary.json"]
    rows = list(csv.DictReader((out / "episodes.csv").open()))
    assert list(rows[0]) == ["step", "episode", "return", "length", "success"]
    assert len(rows) == 300 // 4 and all(int(r["length"]) == 4 for r in rows)
    curve = list(csv.DictReader((out / "curve.csv").open()))  # 100 windows of 3 steps: an episode ends in every 4th
    assert len(curve) == 100 and [int(w["step"]) for w in curve[:2]] == [3, 6]
    assert sum(int(w["episodes"]) for w in curve) == 75
    ended = [w for w in curve if int(w["episodes"])]
    mean = sum(float(w["return"]) * int(w["episodes"]) for w in ended) / 75
    assert abs(mean - sum(float(r["return"]) for r in rows) / 75) < 1e-9
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "steps",
        "episodes",
        "final_return",
        "success_rate",
        "eval_success_rate",
        "steps_per_second",
        "wall_seconds",
    ):
        assert key in summary
    assert summary["steps"] == 300 and summary["episodes"] == 75 and summary["status"] == "completed"
    assert json.loads((out / "config.json").read_text())["seed"] == 1


def test_population_writes_one_folder_per_seed_equal_to_solo_runs(tmp_path):
    result = cli("train", "--out", str(tmp_path / "pop"), "--seed", "5", "--population", "2", *TINY)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "pop" / "summary.json").read_text())
    assert [r["seed"] for r in summary["runs"]] == [5, 6]
    assert summary["steps_per_second"] == pytest.approx(2 * summary["runs"][0]["steps_per_second"])
    solo = cli("train", "--out", str(tmp_path / "solo"), "--seed", "6", *TINY)
    assert solo.returncode == 0, solo.stderr
    for name in ("episodes.csv", "curve.csv", "config.json"):  # summary.json differs in its timings only
        assert (tmp_path / "pop" / "seed_6" / name).read_text() == (tmp_path / "solo" / name).read_text(), name
    pop, alone = (json.loads((folder / "summary.json").read_text()) for folder in (tmp_path / "pop" / "seed_6",
                                                                                  tmp_path / "solo"))  # fmt: skip
    timings = ("steps_per_second", "wall_seconds")
    assert {k: v for k, v in pop.items() if k not in timings} == {k: v for k, v in alone.items() if k not in timings}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--env", "nope"], "unknown env"),
        (["--agent", "dqn"], "unknown agent"),
        (["--cell", "lstm"], "unknown cell"),
        (["--cell", "gru", "--mode", "rtrl"], "mode rtrl needs cell rtu"),
        (["--cell", "ffn", "--mode", "rtrl"], "mode rtrl needs cell rtu"),
        (["--chain-length", "0"], "chain-length"),
        (["--steps", "0"], "steps"),
        (["--steps", "-5"], "steps"),
        (["--population", "0"], "population"),
        (["--chain-length", "ten"], "invalid int"),
        (["--gamma", "1.5"], "gamma"),
        (["--no-such-flag"], "unrecognized"),
        (["--cell", "gru", "--rtrl-refresh", "5"], "applies to streaming agents in mode rtrl"),
        (["--num-bits", "0"], "num-bits"),
        (["--env", "kmemory_chain", "--chain-length", "0"], "chain-length"),
        (["--env", "kmemory_chain", "--num-bits", "2"], "applies to memory_chain"),
        (["--observation-timing", "late"], "unknown observation_timing"),
        (["--env", "popgym:RepeatFirstEasy", "--observation-timing", "immediate"], "applies to memory_chain"),
        (["--taylor-sensitivity", "--cell", "gru"], "applies to streaming agents in mode rtrl"),
        (["--taylor-sensitivity", "--agent", "ppo"], "applies to streaming agents in mode rtrl"),
        (["--grad-clip", "-1"], "grad-clip"),
        (["--feature-layers", "0"], "feature-layers"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, message):
    out = tmp_path / "never"
    result = cli("train", "--out", str(out), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()


def test_refuses_to_overwrite_existing_results(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    result = cli("train", "--out", str(tmp_path), *TINY)
    assert result.returncode == 2 and "not an empty folder" in result.stderr
    assert (tmp_path / "summary.json").read_text() == "{}"


def test_missing_subcommand_is_a_one_line_error():
    result = cli()
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_stops_cleanly_with_valid_partial_results(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtu_core",
            "train",
            "--out",
            str(out),
            "--chain-length",
            "3",
            "--steps",
            "1000000",
            "--hidden-size",
            "8",
            "--width",
            "8",
            "--progress-every",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.time() + 120
    while "agent-steps/s" not in "".join(seen) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)  # wait until training is under way: the progress bar reports a speed
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    stderr = "".join(seen)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["steps"] < 1_000_000
    rows = list(csv.DictReader((out / "episodes.csv").open()))
    assert len(rows) == summary["episodes"] > 0
    assert not list(out.glob(".*tmp"))  # no half-written temporary files left behind


def test_kmemory_chain_run_reports_sensitivity_staleness(tmp_path):
    out = tmp_path / "stale"
    result = cli(
        "train",
        "--env",
        "kmemory_chain",
        "--chain-length",
        "3",
        "--staleness-every",
        "5",
        "--rtrl-refresh",
        "50",
        "--taylor-sensitivity",
        "--out",
        str(out),
        *TINY,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["sensitivity_staleness"] < 1
    config = json.loads((out / "config.json").read_text())
    assert (config["env"], config["chain_length"], config["taylor_sensitivity"]) == ("kmemory_chain", 3, True)
    assert config["feature_layers"] == 2  # the paper's Stream AC network on KMemoryChain
    rows = list(csv.DictReader((out / "staleness.csv").open()))
    assert len(rows) > 10 and all(float(r["staleness"]) >= 0 for r in rows)
    assert [int(r["step"]) % 5 for r in rows] == [0] * len(rows)


def test_config_json_records_the_resolved_preset(tmp_path):
    out = tmp_path / "popgym"
    result = cli("train", "--env", "popgym:RepeatFirstEasy", "--kappa-critic", "1.25", "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert (config["kappa_actor"], config["kappa_critic"], config["entropy_coeff"]) == (3.0, 1.25, 0.095)
    assert None not in (config[name] for name in ("width", "head_width", "trace_decay", "grad_clip", "mode"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint-every", "-1"], "--checkpoint-every must be >= 0"),
    ],
)
def test_bad_sweep_checkpointing_is_a_one_line_error_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "sweep"
    result = cli("sweep", "--out", str(out), "--grid", "chain_length=2,3", *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()
