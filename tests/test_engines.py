"""``rtu_core.engines``: ``choose`` picks each run's engine once, by name or by ``auto`` / ``eager``; an engine that
does not apply is a one-line ``ConfigError``; and every engine a run can ask for by name trains it as autograd does
(float64: the same actions, episodes and TD errors to rounding)."""

import numpy as np
import pytest

from rtu_core import ConfigError, EpisodeEnd, Progress, TrainConfig, engines, train
from rtu_core.engines import Engine
from rtu_core.training import Run


@pytest.mark.parametrize(
    "fields, expected",
    [
        (dict(), Engine("native")),
        (dict(engine="eager"), Engine("fused")),
        (dict(engine="eager", cell="gru"), Engine("autograd")),
        (dict(engine="eager", head_width=4), Engine("autograd")),  # the hand-written backward: linear read-out only
        (dict(engine="autograd"), Engine("autograd")),
        (dict(engine="fused"), Engine("fused")),
        (dict(agent="qrc", engine="eager"), Engine("autograd")),  # QRC(λ) has no hand-written backward
        (dict(optimizer="adaptive_obgd"), Engine("fused")),  # the native step runs ObGD only
        (dict(taylor_sensitivity=True, nonlinear_rtu=True), Engine("fused")),
        (dict(agent="ppo", steps=4096), Engine("autograd")),  # PPO's native rollout: one environment per member
        (dict(agent="ppo", ppo_num_envs=1, ppo_minibatches=1), Engine("native")),
    ],
)
def test_the_engine_a_config_asks_for(fields, expected):
    assert engines.preferred(TrainConfig(**fields)) == expected


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(engine="native", optimizer="adaptive_obgd"), "engine native runs stream_ac"),
        (dict(engine="native", agent="ppo", steps=4096), "engine native runs stream_ac"),
        (dict(engine="fused", agent="qrc"), "engine fused runs stream_ac with cell rtu"),
        (dict(engine="fused", cell="gru"), "engine fused runs stream_ac with cell rtu"),
        (dict(engine="graphs"), "engine graphs runs stream_ac (obgd) or qrc on device cuda"),
        (dict(engine="turbo"), "unknown engine 'turbo'"),
    ],
)
def test_an_engine_that_does_not_apply_is_a_one_line_error(fields, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        TrainConfig(**fields)
    assert "\n" not in str(error.value)


def test_a_run_chooses_once_and_its_agent_steps_with_that_engine():
    run = Run(TrainConfig(hidden_size=4, width=4, steps=10))
    assert run.engine == Engine("native") and run.agent.engine == "native"
    run = Run(TrainConfig(agent="qrc", hidden_size=4, width=4, steps=10, engine="autograd"))
    assert run.engine == Engine("autograd") and type(run.agent).__name__ == "QRC"


def trajectory(config):
    actions, td_errors = [], []
    for event in train(config):
        if isinstance(event, EpisodeEnd):
            actions.append((event.member, event.step, event.episode_return))
        elif isinstance(event, Progress):
            td_errors.append(event.td_error)
    return actions, np.concatenate(td_errors)


CPU_ENGINES = {
    "stream_ac": ["autograd", "fused", "native"],
    "qrc": ["autograd", "native"],
}


@pytest.mark.parametrize("agent", CPU_ENGINES)
def test_every_engine_asked_by_name_trains_as_autograd(agent):
    """float64, RTU-RTRL, a population of 2, 400 steps: episodes identical and TD errors equal to rounding."""
    base = dict(agent=agent, chain_length=3, steps=400, hidden_size=6, width=5, population=2, dtype="float64", seed=1)
    base |= dict(eval_episodes=0, progress_every=1)
    reference_episodes, reference_td = trajectory(TrainConfig(**base, engine="autograd"))
    assert len(reference_episodes) > 100
    for name in CPU_ENGINES[agent][1:]:
        episodes, td = trajectory(TrainConfig(**base, engine=name))
        assert episodes == reference_episodes, name
        np.testing.assert_allclose(td, reference_td, rtol=1e-9, atol=1e-11, err_msg=name)


def test_an_agent_class_refuses_another_engines_step():
    """``agents.agent_class`` picks the class for the run's engine; the rule's own class built with the native
    engine's choice is a one-line error, not an autograd run under a native label."""
    import gymnasium as gym
    import torch

    from rtu_core.agents import NativeStreamAC, StreamAC, agent_class
    from rtu_core.rng import MemberRandom

    config = TrainConfig(hidden_size=4, width=4, steps=10)
    assert agent_class(StreamAC, "native") is NativeStreamAC and agent_class(StreamAC, "autograd") is StreamAC
    with pytest.raises(ValueError, match="StreamAC steps with autograd, the run chose native") as error:
        StreamAC(config, 3, gym.spaces.Discrete(2), [torch.Generator()], MemberRandom([0]), Engine("native"))
    assert "\n" not in str(error.value)
