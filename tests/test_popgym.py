"""POPGym tasks through the agents' wrappers: one-hot observations plus previous action and reward."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rtu_core import RunEnd, TrainConfig, train
from rtu_core.envs import POPGYM_TASKS, make_popgym

pytest.importorskip("popgym")


@pytest.mark.parametrize("task", POPGYM_TASKS)
def test_wrapped_task_spaces_and_previous_action_reward(task):
    raw = gym.make(f"popgym-{task}-v0")
    env = make_popgym(task)
    n = int(env.action_space.n)
    assert env.observation_space.shape == (gym.spaces.flatdim(raw.observation_space) + n + 1,)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs) and not obs[-n - 1 :].any()  # no previous action/reward yet
    raw_obs, _ = raw.reset(seed=3)
    assert np.array_equal(obs[: -n - 1], gym.spaces.flatten(raw.observation_space, raw_obs))  # one-hot encoding
    for action in (1, n - 1):
        obs, reward, terminated, truncated, _ = env.step(action)
        previous = obs[-n - 1 : -1]
        assert previous.sum() == 1 and previous[action] == 1 and obs[-1] == np.float32(reward)
        if terminated or truncated:
            break


@pytest.mark.parametrize("task", POPGYM_TASKS)
def test_same_seed_same_observations(task):
    def rollout():
        env = make_popgym(task)
        obs = [env.reset(seed=7)[0]]
        for t in range(20):
            o, _, terminated, truncated, _ = env.step(t % int(env.action_space.n))
            obs.append(o)
            if terminated or truncated:
                obs.append(env.reset()[0])
        return np.stack(obs)

    assert np.array_equal(rollout(), rollout())


@pytest.mark.parametrize("agent", ["stream_ac", "qrc"])
def test_streaming_agents_run_every_popgym_task(agent):
    for task in POPGYM_TASKS:
        config = TrainConfig(
            env=f"popgym:{task}",
            agent=agent,
            steps=300,
            hidden_size=8,
            width=8,
            eval_episodes=1,
            population=2,
            progress_every=100,
        )
        end = [e for e in train(config) if isinstance(e, RunEnd)][0]
        assert end.status == "completed" and end.step == 300, (task, end)


def test_cli_lists_the_tasks_and_the_lab_offers_them():
    import subprocess
    import sys

    from lab.controls import LabSettings

    listing = subprocess.run([sys.executable, "-m", "rtu_core", "envs"], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and all(f"popgym:{task}" in listing.stdout for task in POPGYM_TASKS)
    settings = LabSettings()
    assert all(f"popgym:{task}" in settings.param.task.objects.values() for task in POPGYM_TASKS)
    settings.task = "popgym:RepeatFirstEasy"
    assert settings.config().env == "popgym:RepeatFirstEasy"
