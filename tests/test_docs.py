"""Docs that cannot rot: every ``python -m rtu_core …`` and ``python benchmarks/…`` command shown in README.md and
docs/*.md runs, at a tiny budget (its steps, seeds, populations, output folders and plots rewritten), so a renamed
flag or script fails the suite.

Not run, each for a reason the test states:
- fragments with a placeholder (``…``, ``HOST:PORT``);
- commands that need a GPU (``--device cuda``, ``gpu_*.py``), where there is none;
- ``benchmarks/curves.py`` over a ``results/`` folder holding no committed ``curve.csv`` (the studies run before
  runs wrote them; their ``episodes.csv`` files stay on the machine that ran them). Over one that holds them, it
  runs on them as committed, at the documented window.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PPO_SCRIPTS = ("benchmarks/budget.py", "benchmarks/masked_mujoco.py")  # their PPO-RTU on MuJoCo: 2048-step rollouts
COMMAND = re.compile(r"(?:\.venv/bin/)?python (?:-m rtu_core|-m benchmarks\.\w+|benchmarks/\w+\.py)(?: [^`\n]*)?")
# flag -> what it becomes (a function of its values); flags not listed keep their values
TINY = {
    "--steps": lambda values, tmp: ["300"],  # 2048 where PPO runs MuJoCo (PPO_SCRIPTS): one rollout
    "--seeds": lambda values, tmp: ["1"],
    "--population": lambda values, tmp: [str(min(int(values[0]), 2))],
    "--out": lambda values, tmp: [str(tmp / "out")],
    "--plot": lambda values, tmp: [str(tmp / "plot.png")],
    "--checkpoint-every": lambda values, tmp: ["100"],
    "--measure-every": lambda values, tmp: ["50"],
    "--eval-episodes": lambda values, tmp: ["2"],
    "--lengths": lambda values, tmp: values[:2],
    "--k": lambda values, tmp: values[:1],
    "--tasks": lambda values, tmp: values[:1],
    "--robots": lambda values, tmp: values[:1],
    "--pages": lambda values, tmp: ["1"],
    "--train-seconds": lambda values, tmp: ["2"],
    "--served-seconds": lambda values, tmp: ["3"],
    "--repeats": lambda values, tmp: ["1"],
    "--seconds": lambda values, tmp: ["1"],
    "--window": lambda values, tmp: ["100"],
    "--grid": lambda values, tmp: [",".join(values[0].split(",")[:2])] if "=" in values[0] else values,
}


def documented_commands() -> list[str]:
    """Each distinct command shown in the docs, continuation lines joined and comments dropped."""
    commands = []
    for doc in DOCS:
        text = re.sub(r"\\\n\s*", " ", doc.read_text())
        for match in COMMAND.finditer(text):
            command = match.group(0).split("#")[0].strip()
            if command not in commands:
                commands.append(command)
    return commands


def why_not_run(command: str) -> str | None:
    if "…" in command or "HOST:PORT" in command:
        return "a fragment with a placeholder"
    if "--device cuda" in command or "benchmarks/gpu_" in command:
        import torch

        return None if torch.cuda.is_available() else "needs a GPU"
    if "benchmarks/curves.py results/" in command:
        folders = [ROOT / word for word in shlex.split(command) if word.startswith("results/")]
        if not any(next(folder.rglob("curve.csv"), None) for folder in folders):
            return "no curve.csv is committed below its results folder (episodes.csv stays on the machine that ran it)"
    return None


def tiny(command: str, tmp: Path) -> list[str]:
    """``command`` as arguments for this test: the project's Python, a tiny budget, outputs under ``tmp``."""
    words = shlex.split(command)
    words = [sys.executable] + words[1:]
    out, i = [], 0
    while i < len(words):
        word = words[i]
        values = []
        j = i + 1
        while j < len(words) and not words[j].startswith("--"):
            values.append(words[j])
            j += 1
        if word in TINY and not (word == "--window" and "benchmarks/curves.py results/" in command):
            out += [word, *TINY[word](values, tmp)]
            i = j
        else:
            out.append(word)
            i += 1
    if any(script in command for script in PPO_SCRIPTS):
        out[out.index("--steps") + 1] = "2048"
    if "benchmarks/throughput.py" in command and "--steps" not in command:
        out.append("--help")  # it runs for minutes at any budget; tests/test_benchmarks.py runs its parts
    if "benchmarks.classroom" in command and "--pages" not in command:
        out += ["--pages", "1", "--train-seconds", "2"]
    if re.search(r"rtu_core (train|sweep)", command) and "--steps" not in command:
        out += ["--steps", "300"]
    if re.search(r"rtu_core (train|sweep)|benchmarks/memory_chain.py", command) and "--eval-episodes" not in command:
        out += ["--eval-episodes", "2"]
    if re.search(r"rtu_core (train|sweep)", command) and "--out" not in command and "--help" not in command:
        out += ["--out", str(tmp / "out")] if " envs" not in command else []
    return out


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 20, COMMANDS


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_documented_command_runs(command, tmp_path):
    reason = why_not_run(command)
    if reason:
        pytest.skip(reason)
    args = tiny(command, tmp_path)
    reads_results = "benchmarks/curves.py results/" in command  # it reads committed curves, writes to tmp_path
    assert reads_results or not any(str(ROOT / "results") in a or a.startswith("results/") for a in args[2:]), args
    run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{' '.join(args)}\n{run.stderr[-3000:]}"


def test_every_relative_link_in_the_docs_resolves():
    """README.md's and docs/*.md's links to files in the repository (pictures, notebooks, results) point at files."""
    missing = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)\)", doc.read_text()):
            if not target.startswith(("http://", "https://")) and not (doc.parent / target).exists():
                missing.append(f"{doc.name}: {target}")
    assert not missing, missing
