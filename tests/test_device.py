"""``device``: a population on a GPU (its step replayed as CUDA graphs, or eager) gives the CPU's numbers; a bad
device is a one-line error.

The GPU test runs where torch sees a CUDA device (skipped, with the reason, elsewhere)."""

import numpy as np
import pytest
import torch

from rtu_core import Progress, TrainConfig, engines, train
from rtu_core.config import ConfigError
from rtu_core.results import RunRecorder

SMALL = dict(chain_length=3, steps=400, hidden_size=8, width=8, eval_episodes=5, population=3, progress_every=1)


def test_unknown_device_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        TrainConfig(device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        TrainConfig(device="cuda")


def test_native_step_is_cpu_only():
    assert engines.preferred(TrainConfig(agent="qrc")).step == "native"
    if torch.cuda.is_available():
        assert engines.preferred(TrainConfig(agent="qrc", device="cuda")) == engines.Engine("autograd", True, True)


def run(config):
    recorder, td_errors = RunRecorder(config), []
    for event in train(config):
        recorder.record(event)
        if isinstance(event, Progress):
            td_errors.append(event.td_error)
    return recorder, torch.from_numpy(np.stack(td_errors))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "agent,cell,mode",
    [("qrc", "rtu", "rtrl"), ("stream_ac", "rtu", "rtrl"), ("qrc", "gru", "tbptt"), ("stream_ac", "ffn", "tbptt")],
)
@pytest.mark.parametrize("engine", ["auto", "eager"])  # the GPU's default (CUDA graphs) and its plain eager step
def test_cuda_population_gives_the_cpu_numbers(agent, cell, mode, engine):
    """float64: every TD error of every member within 1e-9 of the CPU's eager run, and the same episodes."""
    config = TrainConfig(agent=agent, cell=cell, mode=mode, dtype="float64", engine="eager", seed=5, **SMALL)
    cpu, cpu_td = run(config)
    gpu, gpu_td = run(TrainConfig(**{**config.to_dict(), "device": "cuda", "engine": engine}))
    torch.testing.assert_close(gpu_td, cpu_td, rtol=0, atol=1e-9)
    for i in range(3):
        assert gpu.episodes_csv(i) == cpu.episodes_csv(i)
