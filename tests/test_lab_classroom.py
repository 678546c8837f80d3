"""A class on one server (``lab.classroom``): the teacher's limits, the cap on training processes with its visible
line, runs at a lower priority than the server."""

import pytest

from lab import classroom
from lab.controls import LabSettings
from lab.session import TrainingSession
from rtu_core import TrainConfig
from tests.browser import training_processes
from tests.test_lab_session import QUICK, wait_for


@pytest.fixture
def limits(monkeypatch):
    """Set this server's limits for one test (as ``panel serve app.py --args …`` would)."""

    def configure(*argv: str) -> None:
        monkeypatch.setattr(classroom, "LIMITS", classroom.parse(list(argv)))
        monkeypatch.setattr(classroom.SLOTS, "limit", classroom.LIMITS.max_runs)

    return configure


def test_arguments_and_their_one_line_errors():
    limits = classroom.parse(["--max-runs", "3", "--max-steps", "20000", "--max-hidden", "16", "--max-minutes", "5"])
    assert (limits.max_runs, limits.max_steps, limits.max_hidden, limits.max_minutes) == (3, 20000, 16, 5.0)
    assert classroom.parse([]).max_runs >= 1
    for argv, said in ((["--max-runs", "0"], "must be positive"), (["--max-runs", "x"], "invalid int"),
                       (["--max-students", "4"], "unknown --max-students")):  # fmt: skip
        with pytest.raises(ValueError, match=said) as error:
            classroom.parse(argv)
        assert "\n" not in str(error.value)


def test_limits_narrow_the_settings(limits):
    limits("--max-steps", "20000", "--max-hidden", "16")
    settings = LabSettings()
    assert settings.steps == 20000 and settings.param.steps.bounds[1] == 20000
    assert settings.hidden_size == 16 and settings.width == 16
    assert settings.apply_query({"steps": 10**6, "hidden_size": 64}) == [
        "Step budget: 1e+06 is above the largest allowed value; 20000 is used",
        "Hidden units: 64 is above the largest allowed value; 16 is used",
    ]
    assert LabSettings.param.steps.bounds[1] == 5_000_000  # the class's own bounds are left alone


def test_runs_beyond_the_cap_wait_in_line_and_start_by_themselves(limits):
    """With --max-runs 1 a second student's Start waits, saying its place; Stop of the first lets it start; a
    queued run can be stopped; the time limit ends runs; training processes run at the lowest priority."""
    limits("--max-runs", "1", "--max-minutes", "0.05")
    first, second, third = TrainingSession(), TrainingSession(), TrainingSession()
    first.start(TrainConfig(steps=10**7, **QUICK))
    wait_for(lambda: first.drain() is not None and first.step > 0)
    trainings = training_processes()
    assert trainings and all(process.nice() == 19 for process in trainings)
    second.start(TrainConfig(steps=10**7, **QUICK))
    third.start(TrainConfig(steps=10**7, **QUICK))
    wait_for(lambda: second.drain() is not None and second.status == "queued")
    wait_for(lambda: third.drain() is not None and third.message.startswith("place 2 in line"))
    assert second.message == "place 1 in line: this server trains 1 run at a time" and second.step == 0
    third.stop(wait=True, timeout=10)
    third.drain()
    assert third.status == "stopped" and not third.running
    first.stop(wait=True, timeout=30)
    wait_for(lambda: second.drain() is not None and second.status == "running" and second.step > 0)
    wait_for(lambda: second.drain() is not None and second.status == "timeout", timeout=30)  # 3 s limit
    assert "time limit of 3 s" in second.message
