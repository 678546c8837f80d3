"""Typed events yielded by ``rtu_core.train``: the one stream the CLI, app, notebooks and sweeps consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class EpisodeEnd:
    """A training episode of population member ``member`` ended at global step ``step``."""

    step: int
    member: int
    episode: int
    episode_return: float
    length: int
    success: float | None  # fraction of the episode's rewarded decisions that were right (None: no measure)


@dataclass(frozen=True)
class Progress:
    """Training progress at ``step``: the speed so far and each member's |δ_t|."""

    step: int
    total_steps: int
    population: int
    steps_per_second: float  # environment steps of one member per second
    td_error: np.ndarray  # |δ_t| per member at this step


@dataclass(frozen=True)
class Snapshot:
    """Diagnostics of the networks at ``step``: what the app and notebooks draw."""

    step: int
    hidden: dict[str, np.ndarray]  # network -> (window, size) recent states of member 0 (complex for RTU)
    episode_time: np.ndarray  # (window,) time within the episode of each of those states
    cue: np.ndarray  # (window,) the bit member 0 had to remember at each of those states (NaN: the task has none)
    eigenvalues: dict[str, np.ndarray]  # network -> (P, n) complex λ (RTU only)
    sensitivity_norms: dict[str, dict[str, np.ndarray]]  # network -> parameter -> (P,) ‖S^p‖ (RTRL only)
    trace_norms: dict[str, np.ndarray]  # network -> (P,) ‖z‖₁ of the eligibility trace


@dataclass(frozen=True)
class Staleness:
    """How stale the online RTRL sensitivities are at ``step``: per network, (P,) relative errors
    ‖S_online - S_fresh‖ / ‖S_fresh‖ against the episode replayed under the current parameters (NaN for a
    member whose episode just began)."""

    step: int
    errors: dict[str, np.ndarray]


@dataclass(frozen=True)
class EvaluationEnd:
    """Greedy evaluation of member ``member`` after training (no learning, normalisation frozen)."""

    member: int
    returns: list[float]
    successes: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Checkpoint:
    """A step boundary at which the run can be saved: ``save(path, **extra)`` writes the whole run state (agent,
    environments, normalisers, random streams, loop counters) and ``extra`` atomically, for ``train(resume=...)``.
    Call it before asking the generator for the next event."""

    step: int
    save: Callable[..., None]


@dataclass(frozen=True)
class MemberEnd:
    """Population member ``member`` stopped at ``step`` while the others go on: status 'diverged' (its TD error
    became non-finite; message says where). No events of that member follow, and it is not evaluated, so every
    other member still equals its solo run. When no member is left, a RunEnd follows."""

    step: int
    member: int
    status: str
    message: str


@dataclass(frozen=True)
class RunEnd:
    """The run stopped: status is 'completed', 'timeout', 'diverged' or 'interrupted' (with a one-line message)."""

    status: str
    step: int
    wall_seconds: float
    message: str = ""


Event = EpisodeEnd | Progress | Snapshot | Staleness | EvaluationEnd | Checkpoint | MemberEnd | RunEnd
