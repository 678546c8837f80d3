"""Command line: ``python -m rtu_core train ...`` and ``python -m rtu_core sweep ...``.

``train`` runs one config (or a population of seeds) with a progress bar and writes its results files;
``sweep`` runs a grid (``--grid chain_length=2,4,8 --grid method=rtu-rtrl,ffn-tbptt --seeds 5``) packed into
populations on local processes or Ray, resumably (see ``rtu_core.sweep``). Every TrainConfig field is an
option (``chain_length`` -> ``--chain-length``); for ``sweep`` they set the base config. Invalid input prints
one line and exits with status 2 before anything is written; Ctrl-C, time-outs and divergence stop
cleanly with the results so far written (exit 130, 0 and 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import time
from pathlib import Path

from .config import SCOPES, ConfigError, TrainConfig, field_type
from .events import Checkpoint, MemberEnd, Progress, RunEnd
from .results import RunRecorder
from .settings import CONCERNS
from .stops import sigterm_as_interrupt, stop_on_signals
from .sweep import Grid, LocalBackend, RayBackend, parse_axis, run_sweep
from .sweep import check_out_dir as check_sweep_dir
from .training import load_checkpoint, train

SAVE_EVERY_SECONDS = 30.0


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one-line UsageErrors (exit 2 with ``rtu_core: error: ...``)."""

    def error(self, message: str):  # one line instead of argparse's usage block
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m rtu_core", description="Streaming RL with exact-RTRL Recurrent Trace Units.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("train", help="train one run (or a population of seeds) and write results")
    run.add_argument("--out", type=Path, required=True, help="results folder (created; must be empty or new)")
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="keep OUT/checkpoint.pt, written atomically every N steps and on Ctrl-C (0: none)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in OUT/checkpoint.pt (the same options as when it started)",
    )
    _add_config_options(run)
    sweep = commands.add_parser("sweep", help="run a grid of configs x seeds as populations, resumably")
    sweep.add_argument("--out", type=Path, required=True, help="sweep folder (new, or this sweep's, to resume)")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="an axis: any config field, or method (rtu-rtrl, rtu-tbptt, gru-tbptt, ffn-tbptt)",
    )
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per grid point (--seed, --seed + 1, ...)")
    sweep.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (or Ray tasks) at once")
    sweep.add_argument("--max-population", type=int, default=64, help="most runs packed into one population")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local", help="local processes or Ray")
    sweep.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local Ray)")
    sweep.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="every population keeps OUT/checkpoints/<id>.pt, written every N steps; run again to continue (0: none)",
    )
    _add_config_options(sweep)
    commands.add_parser("envs", help="list the environments --env accepts, with their spaces")
    return parser


def _add_config_options(run: argparse.ArgumentParser) -> None:
    """Every TrainConfig field as a flag, in one help section per concern (``settings.CONCERNS``)."""
    for concern in CONCERNS:
        group = run.add_argument_group(concern.__doc__.splitlines()[0].rstrip("."))
        for field in dataclasses.fields(concern):
            flag = "--" + field.name.replace("_", "-")
            kind = field_type(field.name)
            help_text = field.metadata.get("help", "")
            if field.name in SCOPES:  # which runs it acts on (config.SCOPES, as validation and the lab read it)
                help_text += f" [{SCOPES[field.name][0]}]"
            if kind is bool:
                group.add_argument(flag, action="store_true", help=help_text)
            elif field.default is None:
                group.add_argument(flag, type=kind, default=None, help=help_text)
            else:
                group.add_argument(flag, type=kind, default=None, help=f"{help_text} (default: {field.default})")


def given_config_values(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given on the command line (flags left out stay at their defaults)."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name) is not None and getattr(args, f.name) is not False
    }


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**given_config_values(args))


def check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} exists and is not an empty folder; choose a new one")


CHECKPOINT = "checkpoint.pt"


def check_checkpointing(config: TrainConfig, args: argparse.Namespace) -> dict | None:
    """Validate --checkpoint-every / --resume; the loaded checkpoint when resuming."""
    if args.checkpoint_every < 0:
        raise UsageError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if not args.resume:
        check_out_dir(args.out)
        return None
    path = args.out / CHECKPOINT
    if not path.is_file():
        raise UsageError(f"--resume: no {CHECKPOINT} in {args.out}")
    state = load_checkpoint(path)
    saved = state["config"]
    differing = sorted(k for k in set(saved) | set(config.to_dict()) if saved.get(k) != config.to_dict().get(k))
    if differing:
        raise UsageError(
            f"--resume: {path} was made with a different config ({', '.join(differing)}); give the "
            "same options as when the run started"
        )
    return state


def run_training(config: TrainConfig, out: Path, checkpoint_every: int = 0, resume: dict | None = None) -> int:
    """Train with a progress bar, writing results every SAVE_EVERY_SECONDS and at the end. The first Ctrl-C (or a
    SIGTERM) ends the run at the next step boundary (with a checkpoint when checkpointing); a second Ctrl-C stops
    at once."""
    from tqdm import tqdm

    recorder = RunRecorder.resumed(config, resume)
    bar = tqdm(
        total=config.steps, initial=recorder.step, unit="step", mininterval=1.0, dynamic_ncols=True, file=sys.stderr
    )
    last_save = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with stop_on_signals() as requested:
            for event in train(config, checkpoint_every=checkpoint_every, resume=resume, stop=lambda: bool(requested)):
                recorder.record(event)
                if isinstance(event, Progress):
                    bar.update(event.step - bar.n)
                    recent = [e.success for m in recorder.episodes for e in m[-20:] if e.success is not None]
                    postfix = {"agent-steps/s": f"{event.steps_per_second * config.population:.0f}"}
                    if recent:
                        postfix["success"] = f"{sum(recent) / len(recent):.2f}"
                    bar.set_postfix(postfix, refresh=False)
                    if time.monotonic() - last_save > SAVE_EVERY_SECONDS:
                        recorder.write(out)
                        last_save = time.monotonic()
                elif isinstance(event, Checkpoint):
                    event.save(out / CHECKPOINT, recorder=recorder)
                    recorder.write(out)
                elif isinstance(event, MemberEnd) and config.population > 1:
                    bar.write(f"rtu_core: {event.message}; the other members go on")
                elif isinstance(event, RunEnd) and event.message:
                    bar.write(f"rtu_core: {event.message}")
    except KeyboardInterrupt:
        recorder.stop("interrupted", f"interrupted at step {recorder.step}")
    bar.close()
    recorder.write(out)
    if recorder.status == "interrupted":
        resume_hint = " (continue with --resume)" if (out / CHECKPOINT).exists() else ""
        print(f"rtu_core: interrupted; partial results in {out}{resume_hint}", file=sys.stderr)
        return 130
    summary = recorder.summary()
    print(
        f"{out}: status {summary['status']}, episodes {summary['episodes']}, "
        f"success {summary['success_rate']}, eval success {summary['eval_success_rate']}, "
        f"{summary['steps_per_second']:.0f} agent-steps/s"
    )
    return 1 if recorder.status == "diverged" else 0


def grid_from_args(args: argparse.Namespace) -> Grid:
    base = given_config_values(args)
    if "population" in base:
        raise UsageError("sweep packs populations itself: use --seeds, not --population")
    if args.workers < 1 or args.max_population < 1:
        raise UsageError("--workers and --max-population must be >= 1")
    axes = dict(parse_axis(text) for text in args.grid)
    if len(axes) != len(args.grid):
        raise UsageError("each --grid axis may be given once")
    grid = Grid(base, axes, args.seeds)
    grid.runs()  # every point must be a valid config before anything runs
    return grid


def run_sweep_command(args: argparse.Namespace, grid: Grid) -> int:
    from tqdm import tqdm

    runs = grid.runs()
    backend = RayBackend(args.workers, args.ray_address) if args.backend == "ray" else LocalBackend(args.workers)
    total = sum(config.steps for _, config in runs)
    bar = tqdm(total=total, unit="agent-step", unit_scale=True, mininterval=1.0, dynamic_ncols=True, file=sys.stderr)
    finished = []

    def on_run(name: str) -> None:
        finished.append(name)
        bar.set_postfix({"runs": f"{len(finished)}/{len(runs)}"}, refresh=False)

    try:
        with sigterm_as_interrupt():  # a scheduler's stop, as Ctrl-C
            done, skipped = run_sweep(
                args.out,
                grid,
                backend,
                args.max_population,
                on_progress=bar.update,
                on_run=on_run,
                checkpoint_every=args.checkpoint_every,
            )
    except KeyboardInterrupt:
        bar.close()
        print(
            f"rtu_core: interrupted; {len(finished)} finished runs kept in {args.out} (run again to resume)",
            file=sys.stderr,
        )
        return 130
    bar.close()
    print((args.out / "summary.md").read_text(), end="")
    print(f"{args.out}: {done} runs done, {skipped} already finished (skipped)")
    return 0


def list_envs() -> int:
    """One line per environment --env accepts: name, observation size (after the agents' wrappers), actions."""
    import gymnasium as gym

    from .envs import ENV_NAMES, make_env

    for name in ENV_NAMES:
        env = make_env(name, chain_length=4)
        print(f"{name:30s} observation {gym.spaces.flatdim(env.observation_space):4d}   actions {env.action_space}")
        env.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "envs":
            return list_envs()
        if args.command == "sweep":
            grid = grid_from_args(args)
            check_sweep_dir(args.out, grid)
            if args.checkpoint_every < 0:
                raise UsageError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
            if args.backend == "ray" and importlib.util.find_spec("ray") is None:
                raise UsageError("--backend ray needs Ray: pip install 'rtu-lab[ray]'")
        else:
            config = config_from_args(args)
            resume = check_checkpointing(config, args)
    except (UsageError, ConfigError) as error:
        print(f"rtu_core: error: {error}", file=sys.stderr)
        return 2
    if args.command == "sweep":
        return run_sweep_command(args, grid)
    return run_training(config, args.out, args.checkpoint_every, resume)
