"""Sweeps: grid expansion, packing into populations, resumable runs, local processes and Ray."""

import dataclasses
import json
import signal
import subprocess
import sys

import pytest

from rtu_core import ConfigError, TrainConfig
from rtu_core.results import RunRecorder
from rtu_core.sweep import (
    Grid,
    LocalBackend,
    Population,
    RayBackend,
    checkpoint_path,
    pack,
    parse_axis,
    run_population,
    run_sweep,
)
from rtu_core.training import load_checkpoint, train

BASE = {"steps": 240, "hidden_size": 6, "width": 6, "eval_episodes": 4, "progress_every": 40}
GRID = Grid(BASE, {"chain_length": [2, 3], "method": ["rtu-rtrl", "ffn-tbptt"]}, seeds=2)


def test_grid_expands_points_methods_and_seeds():
    runs = dict(GRID.runs())
    assert len(runs) == 8
    config = runs["chain_length=3,method=ffn-tbptt,seed=1"]
    assert (config.chain_length, config.cell, config.mode, config.seed, config.steps) == (3, "ffn", "tbptt", 1, 240)
    assert dict(Grid({}, {"cell": ["gru"]}).runs())["cell=gru,seed=0"].mode == "tbptt"  # default mode per cell


def test_invalid_grids_are_one_line_errors():
    with pytest.raises(ConfigError, match="grid point cell=gru,mode=rtrl: mode rtrl needs cell rtu"):
        Grid({}, {"cell": ["rtu", "gru"], "mode": ["rtrl"]}).runs()
    with pytest.raises(ConfigError, match="cannot sweep over 'colour'"):
        Grid({}, {"colour": [1]})
    with pytest.raises(ConfigError, match="unknown method 'lstm-rtrl'"):
        Grid({}, {"method": ["lstm-rtrl"]})
    with pytest.raises(ConfigError, match="values must be float"):
        parse_axis("gamma=high")
    assert parse_axis("chain-length=2,4") == ("chain_length", [2, 4])
    assert parse_axis("nonlinear_rtu=true,false") == ("nonlinear_rtu", [True, False])


def test_pack_shares_populations_only_where_configs_may_differ():
    populations = pack(GRID.runs(), workers=1, max_population=64)
    assert sorted(len(p) for p in populations) == [4, 4]  # one per method: lengths x seeds
    for members in populations:
        assert len({(c.cell, c.mode) for _, c in members}) == 1
    assert sorted(len(p) for p in pack(GRID.runs(), workers=4, max_population=64)) == [2, 2, 2, 2]
    assert sorted(len(p) for p in pack(GRID.runs(), workers=1, max_population=3)) == [2, 2, 2, 2]
    names = sorted(n for p in pack(GRID.runs(), workers=3, max_population=3) for n, _ in p)
    assert names == sorted(n for n, _ in GRID.runs())  # every run exactly once


def solo_episodes(config: TrainConfig) -> str:
    recorder = RunRecorder(config)
    for event in train(config):
        recorder.record(event)
    return recorder.episodes_csv(0)


def test_local_sweep_writes_runs_equal_to_solo_runs_and_resumes(tmp_path):
    out = tmp_path / "sweep"
    done, skipped = run_sweep(out, GRID, LocalBackend(workers=2))
    assert (done, skipped) == (8, 0)
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 8 and all((out / "runs" / r / "summary.json").exists() for r in runs)
    name, config = GRID.runs()[5]
    assert (out / "runs" / name / "episodes.csv").read_text() == solo_episodes(config)  # packing changes nothing
    table = (out / "summary.md").read_text()
    assert "| 2 | rtu-rtrl | 2 |" in table and "| 3 | ffn-tbptt | 2 |" in table

    # resume: an interrupted run (and only it) runs again
    summary_path = out / "runs" / name / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**summary, "status": "interrupted"}))
    untouched = out / "runs" / GRID.runs()[0][0] / "episodes.csv"
    before = untouched.stat().st_mtime_ns
    assert run_sweep(out, GRID, LocalBackend(workers=2)) == (1, 7)
    assert json.loads(summary_path.read_text())["status"] == "completed" and untouched.stat().st_mtime_ns == before

    # other values of the same axes add their runs to the folder (a run's folder is named by its point)
    more = Grid(BASE, {"chain_length": [4, 2], "method": ["ffn-tbptt"]}, seeds=1)
    assert run_sweep(out, more, LocalBackend(workers=1)) == (1, 1)
    assert json.loads((out / "sweep.json").read_text())["axes"]["chain_length"] == [2, 3, 4]
    assert untouched.stat().st_mtime_ns == before
    table = (out / "summary.md").read_text()  # the folder's whole grid: the new point beside the old ones
    assert "| 4 | ffn-tbptt | 1 |" in table and "| 4 | rtu-rtrl | 0 |" in table and "| 2 | rtu-rtrl | 2 |" in table

    for other in (Grid({**BASE, "steps": 120}, GRID.axes), Grid(BASE, {"chain_length": [4]})):
        with pytest.raises(ConfigError, match="holds a sweep of other settings or axes"):
            run_sweep(out, other, LocalBackend(workers=1))


def test_a_failed_population_raises_its_own_error_with_its_processs_traceback(tmp_path):
    members = [(name, config) for name, config in GRID.runs() if config.cell == "rtu"]
    path = checkpoint_path(tmp_path, members)
    path.write_bytes(b"cut short")  # a damaged checkpoint: the population fails as it starts
    with pytest.raises(ConfigError, match="is not a readable checkpoint") as raised:
        LocalBackend(workers=1).run([Population(members, path, 80)], pytest.fail, lambda agent_steps: None)
    assert "in the population's process" in raised.value.__notes__[0] and "load_checkpoint" in raised.value.__notes__[0]


def test_a_local_sweep_interrupted_mid_run_has_its_population_save_a_checkpoint_and_end(tmp_path):
    """Ctrl-C in the sweep's own process (raised here from its progress callback): the population's process is sent
    SIGTERM, saves its checkpoint at its next step and ends, and the interrupt comes through."""
    members = [(name, dataclasses.replace(config, steps=100_000)) for name, config in GRID.runs()]
    members = [(name, config) for name, config in members if config.cell == "rtu"]
    path = checkpoint_path(tmp_path, members)

    def interrupt(agent_steps: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalBackend(workers=1).run([Population(members, path, 10**6)], pytest.fail, interrupt)
    assert BASE["progress_every"] <= load_checkpoint(path)["loop"]["step"] < 100_000


def test_a_population_stopped_by_its_own_sigterm_stops_the_sweep_as_ctrl_c_does(tmp_path):
    """SIGTERM that reaches a population's process before the sweep's (or only it): the population saves its
    checkpoint and ends, and the sweep ends as on Ctrl-C (KeyboardInterrupt), not with an error."""
    import multiprocessing
    import os

    members = [(name, dataclasses.replace(config, steps=100_000)) for name, config in GRID.runs()]
    members = [(name, config) for name, config in members if config.cell == "rtu"]
    path = checkpoint_path(tmp_path, members)

    def signal_the_population(agent_steps: int) -> None:
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        LocalBackend(workers=1).run([Population(members, path, 10**6)], pytest.fail, signal_the_population)
    assert BASE["progress_every"] <= load_checkpoint(path)["loop"]["step"] < 100_000


def test_ray_backend_gives_the_same_runs(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")
    grid = Grid(BASE, {"chain_length": [2, 3]}, seeds=2)
    run_sweep(tmp_path / "local", grid, LocalBackend(workers=1))
    run_sweep(tmp_path / "ray", grid, RayBackend(workers=2))
    for name, _ in grid.runs():
        local, ray = (tmp_path / b / "runs" / name / "episodes.csv" for b in ("local", "ray"))
        assert ray.read_text() == local.read_text()
    assert (tmp_path / "ray" / "summary.md").read_text() == (tmp_path / "local" / "summary.md").read_text()


def test_sweep_cli_prints_the_table_and_rejects_bad_grids(tmp_path):
    args = [
        sys.executable,
        "-m",
        "rtu_core",
        "sweep",
        "--steps",
        "120",
        "--hidden-size",
        "6",
        "--width",
        "6",
        "--eval-episodes",
        "2",
        "--workers",
        "2",
    ]
    result = subprocess.run(
        args + ["--out", str(tmp_path / "ok"), "--grid", "chain_length=2,3", "--seeds", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| chain_length | seeds | success_rate" in result.stdout and "4 runs done" in result.stdout
    assert "agent-step" in result.stderr  # the progress bar
    for bad, message in [
        (["--grid", "cell=gru", "--mode", "rtrl"], "mode rtrl needs cell rtu"),
        (["--grid", "chain_length=x"], "values must be int"),
        (["--grid", "seed=1,2"], "cannot sweep over 'seed'"),
        (["--population", "4"], "use --seeds"),
    ]:
        out = tmp_path / "bad"
        result = subprocess.run(args + ["--out", str(out)] + bad, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not out.exists()


def test_run_comparison_tabulates_labelled_sweeps(tmp_path):
    from benchmarks.comparison import run_comparison

    grids = {
        "Streaming": Grid(BASE, {"method": ["rtu-rtrl"], "chain_length": [2, 3]}, seeds=1),
        "PPO": Grid(
            {**BASE, "agent": "ppo", "steps": 256, "ppo_num_envs": 2, "ppo_rollout_steps": 64, "ppo_minibatches": 2},
            {"method": ["ffn-tbptt"], "chain_length": [2, 3]},
            seeds=1,
        ),
    }
    markdown, rows = run_comparison(tmp_path, grids, LocalBackend(workers=2), lambda p: f"L{p['chain_length']}")
    assert markdown.splitlines()[0] == "| method | L2 | L3 |"
    assert [r["method"] for r in rows] == ["Streaming, RTU, RTRL"] * 2 + ["PPO, FFN (no memory)"] * 2
    assert (tmp_path / "streaming" / "summary.csv").exists() and (tmp_path / "ppo" / "table.md").exists() is False
    assert (tmp_path / "table.md").read_text() == markdown


def test_run_comparison_checks_every_grid_before_training_any(tmp_path):
    from benchmarks.comparison import run_comparison

    grids = {
        "Streaming": Grid(BASE, {"method": ["rtu-rtrl"]}, seeds=1),
        "PPO": Grid({**BASE, "agent": "ppo", "steps": 100}, {"method": ["ffn-tbptt"]}, seeds=1),
    }
    with pytest.raises(ConfigError, match="grid point method=ffn-tbptt: steps must cover one PPO rollout"):
        run_comparison(tmp_path / "out", grids, LocalBackend(workers=1), lambda p: "task")
    assert not (tmp_path / "out").exists()


def test_an_interrupted_population_continues_from_its_checkpoint(tmp_path):
    """A sweep's population killed after its first checkpoint continues from it when started again, and writes the
    files of an uninterrupted run (episodes bit for bit; the summary up to its timings)."""
    members = [(name, config) for name, config in GRID.runs() if config.cell == "rtu"]
    whole = run_population(Population(members))
    path = checkpoint_path(tmp_path, members)
    assert checkpoint_path(tmp_path, members[::-1]) == path  # named by its runs, whatever their order

    def killed_after_a_checkpoint(agent_steps: int) -> None:
        if path.exists():
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_population(Population(members, path, 80), killed_after_a_checkpoint)
    assert path.exists()
    resumed = run_population(Population(members, path, 80))
    assert not path.exists()  # a finished population leaves no checkpoint behind

    def untimed(summary: str) -> dict:
        return {k: v for k, v in json.loads(summary).items() if k not in ("steps_per_second", "wall_seconds")}

    for name, _ in members:
        assert resumed[name]["episodes.csv"] == whole[name]["episodes.csv"]
        assert untimed(resumed[name]["summary.json"]) == untimed(whole[name]["summary.json"])


@pytest.mark.parametrize("signum, ending", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)])
def test_a_signalled_population_saves_its_checkpoint_at_the_next_step_and_resumes_from_it(tmp_path, signum, ending):
    """Ctrl-C or SIGTERM (what the local backend sends to stop a population) mid-run: the population stops at the
    next step boundary with a checkpoint of that step, not of the last periodic one, and the next sitting continues
    from it."""
    members = [(name, config) for name, config in GRID.runs() if config.cell == "rtu"]
    whole = run_population(Population(members))
    path = checkpoint_path(tmp_path, members)

    def signalled_once(agent_steps: int) -> None:
        if not path.exists():
            signal.raise_signal(signum)

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(ending):
        run_population(Population(members, path, 200), signalled_once)  # no periodic checkpoint before step 200
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored
    assert load_checkpoint(path)["loop"]["step"] == BASE["progress_every"]  # the step the signal came in
    resumed = run_population(Population(members, path, 200))
    assert not path.exists()
    for name, _ in members:
        assert resumed[name]["episodes.csv"] == whole[name]["episodes.csv"]


def test_a_checkpointed_sweep_packs_the_same_populations_when_restarted(tmp_path):
    """Populations with checkpoints are packed from the whole grid, so a restart after some finished packs the rest
    as before (packing only the unfinished runs would split them differently, orphaning their checkpoints)."""

    class Recorder:
        workers = 4

        def __init__(self):
            self.populations = []

        def run(self, populations, on_result, on_progress):
            self.populations = [sorted(name for name, _ in p.members) for p in populations]

    first = Recorder()
    run_sweep(tmp_path, GRID, first, checkpoint_every=100)
    assert len(first.populations) == 4  # one per method, split in two for the 4 workers
    finished_population = first.populations[0]
    configs = dict(GRID.runs())
    for name in finished_population:  # as a finished run leaves its folder: its config, then its summary
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "config.json").write_text(json.dumps(configs[name].to_dict()))
        (tmp_path / "runs" / name / "summary.json").write_text(json.dumps({"status": "completed"}))
    again = Recorder()
    run_sweep(tmp_path, GRID, again, checkpoint_every=100)
    assert again.populations == first.populations[1:]


def test_fraction_of_a_reference_method_per_task():
    """Masked MuJoCo's framing: each method's mean over the reference's on the same task; none where the
    reference's mean is not positive or a run is missing."""
    from benchmarks.comparison import fraction_of

    rows = [
        {"method": "Streaming, RTU, RTRL", "task": "Hopper-P", "mean": 277.0, "se": 95.0},
        {"method": "PPO, RTU, RTRL", "task": "Hopper-P", "mean": 282.0, "se": 5.0},
        {"method": "Streaming, RTU, RTRL", "task": "Hopper-V", "mean": 546.0, "se": 129.0},
        {"method": "PPO, RTU, RTRL", "task": "Hopper-V", "mean": -3.0, "se": 1.0},
        {"method": "Streaming, GRU, TBPTT(1)", "task": "Hopper-V", "mean": 100.0, "se": 1.0},
    ]
    assert fraction_of(rows, "PPO, RTU, RTRL").splitlines() == [
        "| method | Hopper-P | Hopper-V |",
        "|---|---|---|",
        "| Streaming, RTU, RTRL | 0.98 | – |",
        "| Streaming, GRU, TBPTT(1) | – | – |",
    ]
