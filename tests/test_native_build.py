"""How the native step is built and loaded: at install time (setup.py, run by ``make``), so no run waits for a
compiler; at run time where that build is missing, saying so, and never hanging on the lock file of a killed build;
without a compiler, the PyTorch step, said once."""

import os
import signal
import subprocess
import sys
import time

import pytest

from rtu_core.engines import native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [sys.executable, "-m", "rtu_core", "train", "--steps", "300", "--chain-length", "4", "--progress-every", "100"]


def run_time_build(tmp_path, **extra) -> dict:
    """The environment of a process that ignores the install-time build and builds in a fresh cache of its own."""
    return {**os.environ, native.JIT_ONLY: "1", "TORCH_EXTENSIONS_DIR": str(tmp_path / "cache"), **extra}


def test_the_install_time_build_is_the_current_source():
    """``make`` built the extension from this source: runs import it and compile nothing."""
    module = native.installed()
    assert module is not None, "no install-time build of this source: run `make check` (it installs and builds)"
    assert module.source_digest == native.source_digest()
    assert native.ready()


@pytest.mark.slow
def test_a_build_killed_mid_way_does_not_hang_the_next_run(tmp_path):
    """Kill a run-time build while it holds torch's build lock, then start a training run: it removes the stale
    lock, says it is building, builds and trains."""
    env = run_time_build(tmp_path)
    builder = subprocess.Popen(
        [sys.executable, "-c", "from rtu_core.engines import native; native.load()"],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its compiler processes too, when killed
        stderr=subprocess.DEVNULL,
    )
    lock = tmp_path / "cache" / f"rtu_rtrl_native_{native.source_digest()}" / "lock"
    deadline = time.time() + 120
    while not lock.exists():
        assert time.time() < deadline and builder.poll() is None, "the build never took its lock"
        time.sleep(0.1)
    time.sleep(2.0)  # mid-way through compiling
    os.killpg(builder.pid, signal.SIGKILL)
    builder.wait()
    assert lock.exists()  # what a killed build leaves behind

    started = time.time()
    run = subprocess.run(
        TRAIN + ["--out", str(tmp_path / "run")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "removing the lock file of an interrupted build" in run.stderr
    assert "building the native step, once" in run.stderr
    assert (tmp_path / "run" / "summary.json").exists()
    print(f"rebuilt and trained in {time.time() - started:.0f} s")


@pytest.mark.slow
def test_without_a_compiler_the_pytorch_step_runs_and_says_so_once(tmp_path):
    env = run_time_build(tmp_path, CXX="/nonexistent/c++")
    run = subprocess.run(
        TRAIN + ["--out", str(tmp_path / "run")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("the PyTorch step runs instead") == 1, run.stderr[-2000:]
    assert (tmp_path / "run" / "summary.json").exists()
