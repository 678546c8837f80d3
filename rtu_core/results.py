"""Results files of a run, built from its event stream and written atomically.

A solo run writes ``DIR/config.json``, ``DIR/episodes.csv`` (step,episode,return,length,success), ``DIR/curve.csv``
(the learning curve in ``CURVE_WINDOWS`` windows of the step budget: step,episodes,return,success; small enough to
commit where episodes.csv is not), ``DIR/summary.json`` and, when it measured RTRL staleness, ``DIR/staleness.csv``
(step,staleness). A population of P > 1 writes the same files for member k (seed S + k) in ``DIR/seed_<S+k>/`` --
identical to the solo run with that seed -- plus ``DIR/config.json`` and a ``DIR/summary.json`` that averages the
members and lists them under ``runs``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import checkpoint
from .config import TrainConfig, pack_population
from .events import Checkpoint, EpisodeEnd, EvaluationEnd, Event, MemberEnd, Progress, RunEnd, Staleness

RECENT = 100  # episodes behind final_return and success_rate
CURVE_WINDOWS = 100  # windows of the step budget in curve.csv


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


class RunRecorder:
    """Consumes the events of one (population) run; knows its summaries and writes its files."""

    def __init__(self, config: TrainConfig | list[TrainConfig]):
        self.config, self.members = pack_population(config)
        P = self.config.population
        self.episodes: list[list[EpisodeEnd]] = [[] for _ in range(P)]
        self.evaluations: dict[int, EvaluationEnd] = {}
        # per member: (step, mean over networks) of each measurement
        self.staleness: list[list[tuple[int, float]]] = [[] for _ in range(P)]
        self.step = 0
        self.wall_seconds = 0.0
        self.steps_per_second = 0.0
        self.status, self.message = "running", ""
        self.member_ends: dict[int, MemberEnd] = {}  # members that stopped before the run did

    @classmethod
    def resumed(cls, config: TrainConfig | list[TrainConfig], resume: dict | None) -> "RunRecorder":
        """A recorder for ``config``: fresh, or (``resume``: a loaded checkpoint) holding what it had recorded."""
        recorder = cls(config)
        if resume is not None:
            checkpoint.restore(recorder, resume["recorder"], "recorder")
        return recorder

    def record(self, event: Event) -> None:
        if isinstance(event, EpisodeEnd):
            self.episodes[event.member].append(event)
        elif isinstance(event, Progress):
            self.step, self.steps_per_second = event.step, event.steps_per_second
            self.wall_seconds = event.step / max(event.steps_per_second, 1e-9)
        elif isinstance(event, Staleness):
            errors = np.stack(list(event.errors.values()))
            for member in np.flatnonzero(~np.isnan(errors).all(0)):
                self.staleness[member].append((event.step, float(np.nanmean(errors[:, member]))))
        elif isinstance(event, EvaluationEnd):
            self.evaluations[event.member] = event
        elif isinstance(event, MemberEnd):
            self.member_ends[event.member] = event
        elif isinstance(event, Checkpoint):  # a resumed run restarts its count from here
            self.step = event.step
        elif isinstance(event, RunEnd):
            self.step, self.wall_seconds = event.step, event.wall_seconds
            self.status, self.message = event.status, event.message

    def stop(self, status: str, message: str = "") -> None:
        """Mark the run as ended from outside (Ctrl-C): the results so far stay valid."""
        self.status, self.message = status, message

    def member_summary(self, member: int) -> dict:
        episodes = self.episodes[member][-RECENT:]
        successes = [e.success for e in episodes if e.success is not None]
        evaluation, end = self.evaluations.get(member), self.member_ends.get(member)
        return {
            "seed": self.members[member].seed,
            "chain_length": self.members[member].chain_length,
            "status": end.status if end else self.status,
            "message": end.message if end else self.message,
            "steps": end.step if end else self.step,
            "episodes": len(self.episodes[member]),
            "final_return": _mean([e.episode_return for e in episodes]),
            "success_rate": _mean(successes),
            "eval_return": _mean(evaluation.returns) if evaluation else None,
            "eval_success_rate": _mean(evaluation.successes) if evaluation else None,
            "eval_episodes": len(evaluation.returns) if evaluation else 0,
            "steps_per_second": self.steps_per_second,
            "wall_seconds": self.wall_seconds,
            **(
                {"sensitivity_staleness": _mean([v for _, v in self.staleness[member]])}
                if self.config.staleness_every
                else {}
            ),
        }

    def summary(self) -> dict:
        if self.config.population == 1:
            return self.member_summary(0)
        runs = [self.member_summary(i) for i in range(self.config.population)]

        def average(key: str):
            values = [r[key] for r in runs if r[key] is not None]
            return _mean(values)

        return {
            "status": self.status,
            "message": self.message,
            "steps": self.step,
            "population": self.config.population,
            "episodes": sum(r["episodes"] for r in runs),
            **{
                key: average(key)
                for key in (
                    "final_return",
                    "success_rate",
                    "eval_return",
                    "eval_success_rate",
                    *(("sensitivity_staleness",) if self.config.staleness_every else ()),
                )
            },
            "steps_per_second": self.steps_per_second * self.config.population,
            "wall_seconds": self.wall_seconds,
            "runs": runs,
        }

    def episodes_csv(self, member: int) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["step", "episode", "return", "length", "success"])
        for e in self.episodes[member]:
            writer.writerow(
                [e.step, e.episode, repr(e.episode_return), e.length, "" if e.success is None else repr(e.success)]
            )
        return out.getvalue()

    def curve_csv(self, member: int) -> str:
        """The learning curve: for each of ``CURVE_WINDOWS`` equal windows of the step budget, the window's last step,
        the episodes that ended in it, their mean return and success rate (empty where none ended or the task has no
        success measure)."""
        width = max(1, -(-self.members[member].steps // CURVE_WINDOWS))
        windows: dict[int, list[EpisodeEnd]] = {}
        for e in self.episodes[member]:
            windows.setdefault((e.step - 1) // width, []).append(e)
        out = io.StringIO()
        out.write("step,episodes,return,success\n")
        for index in range(-(-self.members[member].steps // width)):
            episodes = windows.get(index, [])
            successes = [e.success for e in episodes if e.success is not None]
            ret, success = _mean([e.episode_return for e in episodes]), _mean(successes)
            out.write(f"{(index + 1) * width},{len(episodes)},{'' if ret is None else repr(ret)},"
                      f"{'' if success is None else repr(success)}\n")  # fmt: skip
        return out.getvalue()

    def member_files(self, member: int) -> dict[str, str]:
        """File name -> contents of one member's results, exactly as its solo run writes them (summary last)."""
        files = {
            "config.json": json.dumps(self.members[member].to_dict(), indent=2) + "\n",
            "episodes.csv": self.episodes_csv(member),
            "curve.csv": self.curve_csv(member),
        }
        if self.config.staleness_every:
            files["staleness.csv"] = "step,staleness\n" + "".join(
                f"{step},{value!r}\n" for step, value in self.staleness[member]
            )
        files["summary.json"] = json.dumps(self.member_summary(member), indent=2) + "\n"
        return files

    def write_member(self, member: int, out: Path) -> None:
        """The results files of one member, exactly as its solo run writes them; summary.json last."""
        for name, text in self.member_files(member).items():
            write_atomic(Path(out) / name, text)

    def write(self, out: Path) -> None:
        """A solo run's three files in ``out``; a population's members in ``out/seed_<seed>/`` and its summary."""
        out = Path(out)
        if self.config.population == 1:
            self.write_member(0, out)
            return
        for i, member in enumerate(self.members):
            self.write_member(i, out / f"seed_{member.seed}")
        write_atomic(out / "config.json", json.dumps(self.config.to_dict(), indent=2) + "\n")
        write_atomic(out / "summary.json", json.dumps(self.summary(), indent=2) + "\n")
