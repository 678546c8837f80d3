"""The batched PPO baseline: its RTRL sequence gradients, GAE, learning a short MemoryChain, events and CLI."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from rtu_core import ConfigError, EpisodeEnd, EvaluationEnd, Progress, RunEnd, TrainConfig, train
from rtu_core.baselines.ppo import gae, to_sequences
from rtu_core.network import MemoryNetwork

PPO = dict(
    agent="ppo",
    chain_length=2,
    steps=4096,
    hidden_size=8,
    width=8,
    eval_episodes=100,
    ppo_num_envs=8,
    ppo_rollout_steps=32,
    ppo_minibatches=4,
)


def test_rtrl_sequence_gradient_equals_bptt_for_the_rtu_and_head():
    torch.manual_seed(0)
    rtrl = MemoryNetwork(3, 2, cell="rtu", mode="rtrl", hidden_size=4, width=5, sparsity=0.0).double()
    bptt = MemoryNetwork(3, 2, cell="rtu", mode="tbptt", hidden_size=4, width=5, sparsity=0.0).double()
    bptt.load_state_dict(rtrl.state_dict())
    obs = torch.randn(9, 2, 3, dtype=torch.float64)
    starts = torch.zeros(9, 2, dtype=torch.bool)
    starts[5, 1] = True  # an episode begins inside the second sequence
    hidden0 = torch.randn(2, 8, dtype=torch.float64)
    weights = torch.randn(9, 2, 2, dtype=torch.float64)
    grads = {}
    for name, net, exact in (("rtrl", rtrl, None), ("bptt", bptt, None), ("rtrl-net-by-bptt", rtrl, False)):
        out = net.unroll(obs, hidden0, starts, rtrl=exact)
        grads[name] = dict(
            zip(
                [n for n, _ in net.named_parameters()],
                torch.autograd.grad((out * weights).sum(), list(net.parameters())),
            )
        )
    for name in ("cell.nu_log", "cell.theta_log", "cell.B_real", "cell.B_imag", "head.weight", "head.bias"):
        assert torch.allclose(grads["rtrl"][name], grads["bptt"][name], rtol=1e-10, atol=1e-12), name
        # what PPO's update computes: the RTRL-mode network unrolled by autograd
        assert torch.allclose(grads["rtrl"][name], grads["rtrl-net-by-bptt"][name], rtol=1e-10, atol=1e-12), name


def test_gae_by_hand_and_sequences_keep_time_order():
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [0.2], [0.1]])
    dones = torch.tensor([[0.0], [0.0], [1.0]])  # o_2 began a new episode
    adv, _ = gae(rewards, values, dones, torch.tensor([0.3]), torch.tensor([0.0]), gamma=0.9, lam=0.5)
    a2 = 2.0 + 0.9 * 0.3 - 0.1
    a1 = 0.0 - 0.2  # o_2 starts a new episode: no bootstrap
    a0 = (1.0 + 0.9 * 0.2 - 0.5) + 0.9 * 0.5 * a1
    assert adv.squeeze(-1).tolist() == pytest.approx([a0, a1, a2])
    x = torch.arange(8).reshape(4, 2)  # (T=4, E=2) -> 2 chunks per env
    assert to_sequences(x, 2).T.tolist() == [[0, 2], [1, 3], [4, 6], [5, 7]]


def test_ppo_rtu_rtrl_learns_a_short_chain_and_ffn_does_not():
    def evaluate(**kwargs):
        events = list(train(TrainConfig(**{**PPO, **kwargs})))
        assert isinstance(events[-1], RunEnd) and events[-1].status == "completed" and events[-1].step == 4096
        assert any(isinstance(e, EpisodeEnd) and e.success is not None for e in events)
        evaluation = next(e for e in events if isinstance(e, EvaluationEnd))
        return sum(evaluation.successes) / len(evaluation.successes)

    assert evaluate(cell="rtu", mode="rtrl") >= 0.9
    assert evaluate(cell="ffn", mode="tbptt") <= 0.75


@pytest.mark.parametrize(
    "overrides",
    [
        dict(cell="rtu", mode="rtrl"),
        dict(cell="rtu", mode="tbptt", nonlinear_rtu=True, head_width=6, activation="tanh"),
        dict(cell="gru", mode="tbptt", head_width=6),
        dict(cell="ffn", mode="tbptt"),
    ],
    ids=["rtu", "nonlinear-rtu-head-block", "gru-head-block", "ffn"],
)
def test_ppo_rollout_by_the_native_forward_pass_equals_the_eager_one(overrides):
    """With one environment the rollout steps the networks by the native forward pass: float64, the same episodes
    and evaluation, and parameters equal to the eager run's after several updates."""
    from rtu_core.engines import native
    from rtu_core.training import Run

    base = {**PPO, "steps": 640, "eval_episodes": 3, "ppo_num_envs": 1, "ppo_rollout_steps": 128, "dtype": "float64"}
    fast, eager = (TrainConfig(**{**base, **overrides, "engine": engine}) for engine in ("auto", "eager"))
    assert set(Run(fast).agent.native) == {"actor", "critic"} and not Run(eager).agent.native
    assert native.available()
    runs, deltas = [], []
    for config in (fast, eager):
        events = list(train(dataclasses.replace(config, progress_every=128)))
        runs.append([e for e in events if isinstance(e, (EpisodeEnd, EvaluationEnd))])
        deltas.append(np.concatenate([e.td_error for e in events if isinstance(e, Progress)]))
    assert runs[0] == runs[1] and len(runs[0]) > 100
    assert len(deltas[0]) == 5 and np.allclose(deltas[0], deltas[1], rtol=1e-9, atol=0)  # mean |δ| of each rollout


def test_ppo_is_deterministic_per_seed():
    config = TrainConfig(**{**PPO, "steps": 512, "cell": "gru", "mode": "tbptt", "eval_episodes": 2})
    first = [e for e in train(config) if isinstance(e, EpisodeEnd)]
    second = [e for e in train(config) if isinstance(e, EpisodeEnd)]
    assert first == second and len(first) > 100


def test_ppo_config_errors():
    with pytest.raises(ConfigError, match="population must be 1"):
        TrainConfig(**{**PPO, "population": 2})
    with pytest.raises(ConfigError, match="ppo-minibatches must split"):
        TrainConfig(**{**PPO, "ppo_minibatches": 3})


def test_ppo_cli_with_mode_omitted(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtu_core",
            "train",
            "--agent",
            "ppo",
            "--cell",
            "gru",
            "--chain-length",
            "2",
            "--steps",
            "512",
            "--hidden-size",
            "8",
            "--width",
            "8",
            "--ppo-num-envs",
            "4",
            "--ppo-rollout-steps",
            "32",
            "--ppo-minibatches",
            "2",
            "--eval-episodes",
            "3",
            "--out",
            str(tmp_path / "ppo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ppo" / "summary.json").exists() and (tmp_path / "ppo" / "episodes.csv").exists()


def test_lab_runs_ppo_and_its_sweep_tab_refuses_it():
    from lab.app import LabApp
    from lab.session import TrainingSession

    app = LabApp()
    app.settings.param.update(agent="ppo", chain_length=2, hidden_size=6, width=6, steps=2048)
    session = TrainingSession()
    session.start(app.settings.config(eval_episodes=2))
    session._thread.join(120)
    session.drain()
    assert session.status == "completed" and session.step == 2048 and session.episodes > 100
    with pytest.raises(ConfigError, match="sweep tab runs streaming agents"):
        app.sweep.start()


def test_ppo_on_mujoco_normalises_and_runs():
    config = TrainConfig(
        env="mujoco:Hopper",
        mask="V",
        agent="ppo",
        cell="rtu",
        mode="rtrl",
        hidden_size=8,
        width=8,
        steps=256,
        ppo_num_envs=1,
        ppo_rollout_steps=128,
        ppo_minibatches=4,
        eval_episodes=1,
    )
    events = list(train(config))
    assert events[-1].status == "completed"
    evaluation = next(e for e in events if isinstance(e, EvaluationEnd))
    assert len(evaluation.returns) == 1 and np.isfinite(evaluation.returns[0])
