"""``kernels``: QRC(λ)'s one-pass update gives the eager update's numbers bit for bit (float32 and float64, with and
without the gradient correction, episodes ending and Watkins cuts). On a GPU the compiled kernel runs; without one,
Triton's interpreter runs it on the CPU (tests/conftest.py sets TRITON_INTERPRET). Either needs Triton, which CUDA
builds of torch bring: the CPU-only install of `make` and CI has none, so there the test is skipped with that
reason."""

import pytest
import torch

from rtu_core import TrainConfig
from rtu_core.agents import make_agent
from rtu_core.engines import kernels
from rtu_core.rng import MemberRandom

pytestmark = pytest.mark.skipif(kernels.triton is None, reason="needs Triton (it comes with CUDA builds of torch)")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def make(dtype: str, **fields):
    import gymnasium as gym

    config = TrainConfig(agent="qrc", engine="eager", dtype=dtype, population=3, hidden_size=6, width=5, **fields)
    seeds = [21, 22, 23]
    agent = make_agent(
        config, 3, gym.spaces.Discrete(3), [torch.Generator().manual_seed(s) for s in seeds], MemberRandom(seeds)
    )
    for net in agent.networks.values():  # as a run on ``device`` has them (built on the CPU, then moved)
        net.to(DEVICE)
    return agent


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fields", [{}, {"no_gradient_correction": True}, {"cell": "gru", "mode": "tbptt"}])
def test_one_pass_update_gives_the_eager_numbers(dtype, fields):
    agent, twin = make(dtype, **fields), make(dtype, **fields)
    agent.enable_one_pass_update()
    assert agent.one_pass is not None and twin.one_pass is None
    data = torch.Generator().manual_seed(1)
    float_type = getattr(torch, dtype)
    for t in range(10):
        obs, next_obs = torch.randn(2, 3, 3, generator=data, dtype=float_type).to(DEVICE)
        reward = torch.randn(3, generator=data, dtype=float_type).to(DEVICE)
        done = torch.tensor([t % 4 == 3, False, t == 6], device=DEVICE)
        terminated = done & torch.tensor([True, False, True], device=DEVICE)
        deltas = [a.learn(a.act(obs), reward, next_obs, terminated, done) for a in (agent, twin)]
        assert torch.equal(*deltas)
    for a, b in zip(agent.q_params + agent.h_params, twin.q_params + twin.h_params, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(agent.q_trace_flat, twin.q_trace_flat) and torch.equal(agent.h_trace_flat, twin.h_trace_flat)
    assert torch.equal(agent.bias_trace, twin.bias_trace)
