"""rtu-lab's library: exact-RTRL Recurrent Trace Units and streaming RL agents under partial observability.

from rtu_core import TrainConfig, train
for event in train(TrainConfig(chain_length=8, steps=20_000)):
    ...
"""

from . import envs  # registers the gymnasium ids
from .config import ConfigError, TrainConfig
from .events import EpisodeEnd, EvaluationEnd, Event, MemberEnd, Progress, RunEnd, Snapshot, Staleness
from .training import train

__all__ = [
    "train",
    "TrainConfig",
    "ConfigError",
    "Event",
    "MemberEnd",
    "EpisodeEnd",
    "EvaluationEnd",
    "Progress",
    "RunEnd",
    "Snapshot",
    "Staleness",
    "envs",
]
