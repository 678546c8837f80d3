"""Populations of paper-size agents on a GPU (``--device cuda``): agent-steps/s vs population size P.

QRC(λ) and Stream AC(λ), RTU-RTRL, RTU 192 units, feature width 128 (the paper's MemoryChain presets), MemoryChain
L = 16 stepped as one NumPy batch on the CPU, float32, through ``train`` (what a user runs:
``python -m rtu_core train --device cuda --population P ...``): the default step (CUDA graphs,
``rtu_core.engines.graphs``)
at every P, and in the same run the plain eager step (``--engine eager``) at ``--baseline-populations``. Each
configuration trains for ``--seconds``; its rate is taken after the first 2 s (warm-up and recording). Printed beside
each rate: the fraction of the GPU's copy-bandwidth bound (bytes an agent-step must move, as in ``throughput.py``)
and the peak GPU memory.

    python benchmarks/gpu_throughput.py                       # P = 32 ... 4096, ~3 minutes
    python benchmarks/gpu_throughput.py --populations 256 --seconds 5
"""

from __future__ import annotations

import argparse
import time

import torch
from throughput import paper_config, traffic_per_agent_step

from rtu_core import Progress, RunEnd, train

WARM_UP = 2.0


def copy_bandwidth(device: str, megabytes: int = 1024, repeats: int = 10) -> float:
    """Bytes per second moved by a large tensor copy on ``device`` (read + write), best of ``repeats``."""
    source = torch.ones(megabytes * 2**20 // 4, device=device)
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        target.copy_(source)
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * source.numel() * 4 / best


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")


def measure(agent: str, population: int, seconds: float, device: str, engine: str) -> tuple[float, float, str]:
    """(agent-steps/s after the warm-up, peak GPU GiB, how the run ended) of about ``seconds`` of training."""
    config = paper_config(agent, 10**7, population, device=device, time_limit=seconds + WARM_UP, engine=engine)
    config.progress_every = 5
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = first = last = None
    status = "?"
    for event in train(config):
        if isinstance(event, Progress):
            now = time.perf_counter()
            start = start or now
            if first is None and now - start > WARM_UP:
                first = (event.step, now)
            last = (event.step, now)
        elif isinstance(event, RunEnd):
            status = event.status
    if first is None or last[0] == first[0]:
        return float("nan"), peak_gib(device), status
    return (last[0] - first[0]) * population / (last[1] - first[1]), peak_gib(device), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--populations", type=int, nargs="+", default=[32, 256, 1024, 4096])
    parser.add_argument("--agents", nargs="+", default=["qrc", "stream_ac"])
    parser.add_argument("--baseline-populations", type=int, nargs="*", default=[256])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cuda", help="cuda (cpu: a dry run of this script)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_throughput: torch sees no CUDA GPU here")
    bandwidth = copy_bandwidth(args.device)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu (eager step)"
    traffic = traffic_per_agent_step(paper_config("qrc", 100, engine="eager"))
    print(
        f"device: {name}, torch {torch.__version__}; copy bandwidth {bandwidth / 1e9:,.0f} GB/s; "
        f"an agent-step moves >= {traffic / 1e6:.2f} MB -> bound {bandwidth / traffic:,.0f} agent-steps/s",
        flush=True,
    )
    runs = [("auto", p) for p in args.populations] + [("eager", p) for p in args.baseline_populations]
    for agent in args.agents:
        for engine, population in runs:
            rate, peak, status = measure(agent, population, args.seconds, args.device, engine)
            step = "eager" if engine == "eager" else "graphs" if args.device != "cpu" else "auto"
            print(
                f"{agent:9s} {step:6s} P={population:5d}  {rate:9,.0f} agent-steps/s  "
                f"({100 * rate * traffic / bandwidth:4.1f}% of the bound)  peak {peak:5.1f} GiB  [{status}]",
                flush=True,
            )


if __name__ == "__main__":
    main()
