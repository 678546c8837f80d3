"""Checkpoint and resume inside a run: a run stopped at a step boundary and resumed from its checkpoint gives the
numbers of the uninterrupted run, bit for bit (agent, environments, normalisers and random streams are all saved)."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rtu_core import ConfigError, EpisodeEnd, EvaluationEnd, TrainConfig, checkpoint
from rtu_core.events import Checkpoint, RunEnd
from rtu_core.training import Run, load_checkpoint, train


def outcome(events) -> list:
    return [
        (e.member, e.step, e.episode_return, e.success) if isinstance(e, EpisodeEnd) else (e.member, e.returns)
        for e in events
        if isinstance(e, (EpisodeEnd, EvaluationEnd))
    ]


SLOW = pytest.mark.slow  # environments that take seconds to import: the full tier only


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(
            TrainConfig(chain_length=3, steps=400, hidden_size=6, width=5, eval_episodes=5, population=2),
            id="stream-ac-native-population",
        ),
        pytest.param(
            TrainConfig(
                agent="qrc", env="kmemory_chain", chain_length=2, steps=400, hidden_size=6, width=5, eval_episodes=2
            ),
            id="qrc-kmemory-chain",
        ),
        pytest.param(
            TrainConfig(
                agent="qrc",
                env="kmemory_chain",
                chain_length=2,
                steps=400,
                hidden_size=6,
                width=5,
                eval_episodes=2,
                population=2,
                taylor_sensitivity=True,
            ),
            id="qrc-taylor-native-population",  # the correction and each member's previous parameters are saved
        ),
        pytest.param(
            TrainConfig(
                cell="gru", chain_length=3, steps=300, hidden_size=6, width=5, eval_episodes=3, staleness_every=0
            ),
            id="gru",
        ),
        pytest.param(
            TrainConfig(
                env="popgym:RepeatFirstEasy", steps=300, hidden_size=6, width=5, eval_episodes=2, engine="eager"
            ),
            id="popgym-eager",
            marks=SLOW,
        ),
        pytest.param(
            TrainConfig(env="mujoco:Walker2d", mask="P", steps=256, hidden_size=6, width=5, eval_episodes=1),
            id="stream-ac-mujoco",
            marks=SLOW,
        ),
        pytest.param(  # Ant's reward reads a position derived at the step's start: MjData's arrays are saved
            TrainConfig(env="mujoco:Ant", steps=256, hidden_size=6, width=5, eval_episodes=1),
            id="stream-ac-mujoco-ant",
            marks=SLOW,
        ),
        pytest.param(  # an enum in the environment's state
            TrainConfig(env="popgym:AutoencodeEasy", steps=300, hidden_size=6, width=5, eval_episodes=2),
            id="popgym-autoencode",
            marks=SLOW,
        ),
        pytest.param(  # NumPy strings as dict keys and arrays (a card deck)
            TrainConfig(agent="qrc", env="popgym:HigherLowerEasy", steps=300, hidden_size=6, width=5, eval_episodes=2),
            id="qrc-popgym-higherlower",
            marks=SLOW,
        ),
        pytest.param(
            TrainConfig(
                agent="ppo",
                env="mujoco:Hopper",
                mask="V",
                steps=256,
                hidden_size=6,
                width=5,
                eval_episodes=1,
                ppo_num_envs=2,
                ppo_rollout_steps=32,
                ppo_minibatches=4,
            ),
            id="ppo-mujoco-mid-rollout",
            marks=SLOW,
        ),
    ],
)
def test_resumed_run_equals_the_uninterrupted_run(config, tmp_path):
    whole = outcome(train(config))
    first, checkpoints = [], []
    # stop at the boundary after the first checkpoint (step 100); a checkpoint is saved there too. PPO's steps
    # count its 2 environments, and step 100 falls inside a rollout: the checkpoint keeps the rollout so far
    for event in train(config, checkpoint_every=100, stop=lambda: bool(checkpoints)):
        first.append(event)
        if isinstance(event, Checkpoint):
            event.save(tmp_path / "checkpoint.pt")
            checkpoints.append(event.step)
    lanes = config.ppo_num_envs if config.agent == "ppo" else 1
    assert checkpoints == [100, 100 + lanes]
    stopped = [e for e in first if isinstance(e, RunEnd)]
    assert stopped and stopped[0].status == "interrupted" and stopped[0].step < config.steps
    resumed = list(train(config, resume=load_checkpoint(tmp_path / "checkpoint.pt")))
    assert outcome(first) + outcome(resumed) == whole
    assert isinstance(resumed[-1], RunEnd) and resumed[-1].status == "completed"


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "rtu_core", "train", *args], capture_output=True, text=True, timeout=600
    )


RUN = [
    "--chain-length",
    "3",
    "--steps",
    "8000",
    "--hidden-size",
    "6",
    "--width",
    "5",
    "--eval-episodes",
    "10",
    "--progress-every",
    "50",
]


@pytest.mark.slow  # training subprocesses
def test_cli_ctrl_c_then_resume_gives_the_uninterrupted_results(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert cli("--out", str(whole), *RUN).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtu_core", "train", "--out", str(split), "--checkpoint-every", "2000", *RUN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (split / "episodes.csv").exists():  # results are written at the first checkpoint: training is under way
        assert time.time() < deadline and proc.poll() is None, "no checkpoint was written"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume" in stderr, stderr
    summary = json.loads((split / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["steps"] < 8000
    result = cli("--out", str(split), "--checkpoint-every", "2000", "--resume", *RUN)
    assert result.returncode == 0, result.stderr
    assert (split / "episodes.csv").read_text() == (whole / "episodes.csv").read_text()
    timing = {"steps_per_second", "wall_seconds"}
    a, b = (json.loads((d / "summary.json").read_text()) for d in (split, whole))
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert len(list(csv.DictReader((split / "episodes.csv").open()))) == a["episodes"]


@pytest.mark.slow  # training subprocesses
@pytest.mark.parametrize(
    "args, message",
    [
        (["--resume"], "no checkpoint.pt"),
        (["--resume", "--chain-length", "4"], "different config (chain_length)"),
        (["--checkpoint-every", "-1"], "--checkpoint-every"),
    ],
)
def test_bad_resume_is_a_one_line_error_and_changes_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    if "different" in message:
        assert (
            cli(
                "--out",
                str(out),
                "--checkpoint-every",
                "100",
                "--steps",
                "200",
                "--hidden-size",
                "4",
                "--width",
                "4",
                "--eval-episodes",
                "1",
                "--chain-length",
                "3",
            ).returncode
            == 0
        )
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) if out.exists() else None
    if before is not None:
        args = args + ["--steps", "200", "--hidden-size", "4", "--width", "4", "--eval-episodes", "1"]
    result = cli("--out", str(out), *args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    after = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) if out.exists() else None
    assert after == before


def checkpoint_after(config, tmp_path, step: int = 100):
    path = tmp_path / "checkpoint.pt"
    for event in train(config, checkpoint_every=step):
        if isinstance(event, Checkpoint):
            event.save(path)
            return path


SMALL = TrainConfig(agent="qrc", chain_length=3, steps=300, hidden_size=4, width=4, eval_episodes=1, population=2)


def test_a_checkpoint_is_plain_data_that_torch_opens_with_weights_only(tmp_path):
    """Every network's parameters, traces, memories and random states are plain tensors in the file."""
    saved = torch.load(checkpoint_after(SMALL, tmp_path), weights_only=True)
    assert saved["format"] == checkpoint.FORMAT and saved["loop"]["step"] == 100
    assert [TrainConfig.from_dict(m) for m in saved["members"]] == SMALL.members()
    agent = saved["run"]["attrs"]["agent"]["attrs"]
    weights = agent["q_net"]["attrs"]["_modules"]["__dict__"]["head"]["attrs"]["_parameters"]["__dict__"]["weight"]
    assert weights.shape == Run(SMALL).agent.q_net.head.weight.shape
    assert not torch.equal(weights, Run(SMALL).agent.q_net.head.weight)  # as trained for 100 steps


class Planted:
    """An object whose unpickling would run code: it writes a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickled_file_is_refused_without_running_it(tmp_path):
    """A checkpoint of the earlier, pickled format (or any file holding objects) is a one-line error, and opening it
    runs nothing."""
    path, marker = tmp_path / "checkpoint.pt", tmp_path / "ran"
    torch.save({"config": SMALL.to_dict(), "run": Planted(marker)}, path)
    with pytest.raises(ConfigError, match="pickled objects, which are not opened") as error:
        load_checkpoint(path)
    assert not marker.exists() and "\n" not in str(error.value)


def test_another_format_is_a_one_line_error(tmp_path):
    path = checkpoint_after(SMALL, tmp_path)
    content = torch.load(path, weights_only=True)
    torch.save({**content, "format": checkpoint.FORMAT + 1}, path)
    with pytest.raises(ConfigError, match=f"format {checkpoint.FORMAT + 1}, this version reads format 2"):
        load_checkpoint(path)


def test_a_checkpoint_of_another_network_is_a_one_line_error(tmp_path):
    """The saved state must fit the run its config builds: a tensor of another shape is refused, naming it."""
    saved = load_checkpoint(checkpoint_after(SMALL, tmp_path))
    saved["members"] = [{**m, "hidden_size": 5} for m in saved["members"]]
    with pytest.raises(ConfigError, match=r"checkpoint run\.agent\.q_net.* shape"):
        list(train(SMALL, resume=saved))
