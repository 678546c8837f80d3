"""Command line: ``python -m rtu_core train ...`` (headless runs with a progress bar and results files).

Every TrainConfig field is an option (``chain_length`` -> ``--chain-length``). Invalid input prints
one line and exits with status 2 before anything is written; Ctrl-C, time-outs and divergence stop
cleanly with the results so far written (exit 130, 0 and 1).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing
from pathlib import Path

from .config import ConfigError, TrainConfig
from .events import EpisodeEnd, Progress, RunEnd
from .results import RunRecorder
from .training import train

SAVE_EVERY_SECONDS = 30.0


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of argparse's usage block
        raise UsageError(message)


def _option_type(field: dataclasses.Field):
    hint = typing.get_type_hints(TrainConfig)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m rtu_core", description="Streaming RL with exact-RTRL Recurrent Trace Units.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("train", help="train one run (or a population of seeds) and write results")
    run.add_argument("--out", type=Path, required=True, help="results folder (created; must be empty or new)")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = _option_type(field)
        help_text = field.metadata.get("help", "")
        if kind is bool:
            run.add_argument(flag, action="store_true", help=help_text)
        elif field.name == "mode":
            run.add_argument(flag, default=None, help=help_text + " (default: rtrl for rtu, tbptt otherwise)")
        else:
            run.add_argument(flag, type=kind, default=None, help=f"{help_text} (default: {field.default})")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if getattr(args, f.name) is not None and getattr(args, f.name) is not False}
    values.setdefault("mode", "rtrl" if values.get("cell", "rtu") == "rtu" else "tbptt")
    return TrainConfig(**values)


def check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} exists and is not an empty folder; choose a new one")


def run_training(config: TrainConfig, out: Path) -> int:
    from tqdm import tqdm

    recorder = RunRecorder(config)
    bar = tqdm(total=config.steps, unit="step", mininterval=1.0, dynamic_ncols=True, file=sys.stderr)
    last_save = time.monotonic()
    try:
        for event in train(config):
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
            elif isinstance(event, RunEnd) and event.message:
                bar.write(f"rtu_core: {event.message}")
    except KeyboardInterrupt:
        recorder.stop("interrupted", f"interrupted at step {recorder.step}")
        bar.close()
        recorder.write(out)
        print(f"rtu_core: interrupted; partial results in {out}", file=sys.stderr)
        return 130
    bar.close()
    recorder.write(out)
    summary = recorder.summary()
    print(f"{out}: status {summary['status']}, episodes {summary['episodes']}, "
          f"success {summary['success_rate']}, eval success {summary['eval_success_rate']}, "
          f"{summary['steps_per_second']:.0f} agent-steps/s")
    return 1 if recorder.status == "diverged" else 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        config = config_from_args(args)
        check_out_dir(args.out)
    except (UsageError, ConfigError) as error:
        print(f"rtu_core: error: {error}", file=sys.stderr)
        return 2
    return run_training(config, args.out)
