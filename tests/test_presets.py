"""The paper's settings as presets (docs/method.md §7): resolved by TrainConfig itself, explicit values win,
the resolved config reloads to the same run."""

import dataclasses
import json

import pytest

from rtu_core import TrainConfig
from rtu_core.config import ConfigError
from rtu_core.presets import PRESET_FIELDS, preset


def test_every_field_a_preset_sets_is_resolved_for_every_task_and_agent():
    for env in ("memory_chain", "kmemory_chain", "popgym:RepeatFirstEasy", "mujoco:Hopper"):
        for agent in ("stream_ac", "qrc", "ppo"):
            if agent == "qrc" and env.startswith("mujoco"):
                continue
            config = TrainConfig(env=env, agent=agent, steps=4096)
            assert all(getattr(config, name) is not None for name in PRESET_FIELDS), (env, agent)
            assert config.mode == "rtrl"


@pytest.mark.parametrize(
    "env, agent, expected",
    [
        (
            "memory_chain",
            "qrc",
            dict(width=128, head_width=0, trace_decay=0.95, exploration_fraction=0.1, grad_clip=0.0),
        ),
        ("memory_chain", "stream_ac", dict(width=128, trace_decay=0.8, kappa_actor=1.5, kappa_critic=1.0)),
        ("kmemory_chain", "stream_ac", dict(feature_layers=2, width=128, trace_decay=0.95)),
        ("kmemory_chain", "qrc", dict(feature_layers=1, trace_decay=0.95)),
        (
            "popgym:CountRecallEasy",
            "stream_ac",
            dict(width=64, head_width=64, kappa_actor=3.0, kappa_critic=2.0, entropy_coeff=0.095, trace_decay=0.8),
        ),
        ("popgym:CountRecallEasy", "qrc", dict(width=64, head_width=64, grad_clip=1.0, exploration_fraction=0.2)),
        ("popgym:CountRecallEasy", "ppo", dict(ppo_num_envs=32, ppo_rollout_steps=64)),
        ("mujoco:Walker2d", "stream_ac", dict(activation="tanh", width=64, head_width=64, entropy_coeff=0.01)),
        ("mujoco:Walker2d", "ppo", dict(activation="tanh", ppo_num_envs=1, ppo_rollout_steps=2048)),
    ],
)
def test_presets_follow_the_papers_settings(env, agent, expected):
    config = TrainConfig(env=env, agent=agent, steps=4096)
    assert {name: getattr(config, name) for name in expected} == expected


def test_explicit_values_win_over_the_preset():
    config = TrainConfig(env="popgym:RepeatFirstEasy", kappa_actor=1.5, width=32, trace_decay=0.5)
    assert (config.kappa_actor, config.width, config.trace_decay) == (1.5, 32, 0.5)
    assert config.kappa_critic == 2.0  # what was not set still comes from the preset


def test_popgym_no_longer_runs_with_memory_chains_settings():
    popgym, chain = TrainConfig(env="popgym:RepeatFirstEasy"), TrainConfig()
    assert (popgym.kappa_actor, popgym.entropy_coeff) != (chain.kappa_actor, chain.entropy_coeff)


@pytest.mark.parametrize("cell, mode", [("rtu", "rtrl"), ("gru", "tbptt"), ("ffn", "tbptt")])
def test_mode_follows_the_cell(cell, mode):
    assert TrainConfig(cell=cell).mode == mode
    assert TrainConfig(cell="rtu", mode="tbptt").mode == "tbptt"


def test_resolved_config_reloads_to_the_same_config():
    config = TrainConfig(env="kmemory_chain", agent="qrc", chain_length=4)
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    # a member keeps the resolved settings of its population
    assert dataclasses.replace(config, seed=3).feature_layers == config.feature_layers


def test_preset_lookup_falls_back_to_the_agents_base():
    assert preset("memory_chain", "ppo")["ppo_num_envs"] == 32
    assert preset("mujoco:Ant", "stream_ac")["activation"] == "tanh"


def test_a_results_config_with_a_retired_field_loads_at_its_old_default_only():
    """config.json files written before ``compile`` went still load; one that asked for it says it is gone."""
    values = TrainConfig().to_dict()
    assert TrainConfig.from_dict({**values, "compile": False}) == TrainConfig()
    with pytest.raises(ConfigError, match="compile True is no longer an option"):
        TrainConfig.from_dict({**values, "compile": True})


def test_which_runs_a_setting_acts_on_is_one_fact_for_validation_the_cli_and_the_lab():
    """``config.SCOPES``: validation refuses a setting given where it does not act, the CLI's help names its scope,
    and the lab hides it (and leaves it at its default)."""
    from lab.controls import LabSettings
    from rtu_core.cli import build_parser
    from rtu_core.config import SCOPES

    with pytest.raises(ConfigError, match="lr-q applies to agent qrc"):
        TrainConfig(agent="stream_ac", lr_q=0.1)
    with pytest.raises(ConfigError, match="lr applies to agent stream_ac"):
        TrainConfig(agent="qrc", lr=0.5)
    assert TrainConfig(agent="qrc", lr_q=0.1).lr_q == 0.1
    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "[agent qrc]" in " ".join(train_help.split())
    settings = LabSettings()
    settings.param.update(agent="qrc", lr=0.5)
    assert not settings.applies("lr") and settings.applies("lr_q")
    assert settings.config().lr == 1.0  # the hidden setting is not passed on
    for name in ("mask", "lr", "taylor_sensitivity", "chain_length"):
        assert name in SCOPES


def test_each_setting_belongs_to_one_concern_and_the_help_groups_them():
    """``settings.CONCERNS`` together are TrainConfig's fields, each once; the CLI's help has one section per concern
    holding its flags (``--lr-q`` under QRC(λ)'s, ``--mask`` under the task's)."""
    import dataclasses

    from rtu_core.cli import build_parser
    from rtu_core.settings import CONCERNS, QRCSettings, TaskSettings

    names = [f.name for concern in CONCERNS for f in dataclasses.fields(concern)]
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(TrainConfig)) and len(set(names)) == len(names)
    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    sections = {}
    for line in train_help.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
        elif line.lstrip().startswith("--"):
            sections.setdefault(title, []).append(line.split()[0])
    assert "--lr-q" in sections[QRCSettings.__doc__.splitlines()[0].rstrip(".")]
    assert "--mask" in sections[TaskSettings.__doc__.splitlines()[0].rstrip(".")]
    assert len(sections) >= len(CONCERNS)
