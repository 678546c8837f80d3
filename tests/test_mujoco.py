"""Masked MuJoCo: the mask's indices come from each robot's qpos/qvel split; the streaming agent runs on all."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rtu_core import ConfigError, RunEnd, TrainConfig, train
from rtu_core.envs import MUJOCO_ROBOTS, make_mujoco

pytest.importorskip("mujoco")
POSITIONS = {"HalfCheetah": 8, "Hopper": 5, "Walker2d": 8, "Ant": 13}  # docs/method.md §5 (x/y excluded)
VELOCITIES = {"HalfCheetah": 9, "Hopper": 6, "Walker2d": 9, "Ant": 14}


@pytest.mark.parametrize("robot", MUJOCO_ROBOTS)
def test_masks_keep_positions_or_velocities(robot):
    full = make_mujoco(robot, "F")
    obs_full, _ = full.reset(seed=0)
    n_pos, n_vel = POSITIONS[robot], VELOCITIES[robot]
    assert obs_full.shape == (n_pos + n_vel,)
    for mode, kept in (("P", slice(0, n_pos)), ("V", slice(n_pos, n_pos + n_vel))):
        env = make_mujoco(robot, mode)
        check_env(env, skip_render_check=True)
        obs, _ = env.reset(seed=0)
        keep = np.zeros(obs.shape, bool)
        keep[kept] = True
        assert np.array_equal(obs[keep], obs_full[keep]) and not obs[~keep].any()
        action = env.action_space.sample()
        step_full = full.step(action)[0]
        step_masked = env.step(action)[0]
        assert np.allclose(step_masked[keep], step_full[keep]) and not step_masked[~keep].any()
        full.reset(seed=0)


def test_actions_are_clipped_to_the_robot_box():
    env = make_mujoco("Hopper")
    env.reset(seed=0)
    env.step(np.full(3, 50.0, np.float32))
    assert np.allclose(env.unwrapped.data.ctrl, 1.0)


def test_streaming_gaussian_agent_runs_every_robot_and_mask():
    for robot in MUJOCO_ROBOTS:
        for mask in ("F", "P", "V"):
            config = TrainConfig(
                env=f"mujoco:{robot}",
                mask=mask,
                steps=200,
                hidden_size=8,
                width=8,
                activation="tanh",
                eval_episodes=1,
                progress_every=100,
            )
            end = [e for e in train(config) if isinstance(e, RunEnd)][0]
            assert end.status == "completed" and end.step == 200, (robot, mask, end)


def test_mask_needs_a_mujoco_env():
    with pytest.raises(ConfigError, match="mask applies to mujoco"):
        TrainConfig(mask="P")
    with pytest.raises(ConfigError, match="unknown mask"):
        TrainConfig(env="mujoco:Hopper", mask="X")


def test_lab_offers_masked_mujoco_with_its_defaults():
    from lab.controls import LabSettings

    settings = LabSettings(agent="qrc")
    settings.param.update(task="mujoco:Hopper", mask="V")
    config = settings.config()
    assert (config.env, config.mask, config.agent, config.activation) == ("mujoco:Hopper", "V", "stream_ac", "tanh")
    assert "qrc" not in settings.param.agent.objects.values()
    settings.task = "popgym:RepeatFirstEasy"
    assert settings.mask == "F" and (settings.kappa_actor, settings.kappa_critic) == (3.0, 2.0)
