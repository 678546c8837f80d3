"""Where a paper-size population's step goes on a GPU: kernels, their time, and what is left for the host.

For each agent and population P (MemoryChain L = 16, RTU 192 / width 128, float32), through ``train``:
- the step as a user runs it (CUDA graphs): ms per step, timed over ``--seconds`` after a warm-up;
- the same step run eagerly under torch's profiler: kernels per step, their summed time per step, and the kernels
  that take most of it. The graphs replay these very kernels, except where the graphed step swaps a Triton kernel
  in (QRC's update, ``rtu_core.engines.kernels``): there the eager kernels are an upper bound.
The graphed step's time less the kernels' time is what the host adds (environments, normalisers, transfers, the
loop) plus the gaps between kernels.

    python benchmarks/gpu_profile.py                    # QRC(λ) and Stream AC(λ) at P = 32 and 256
    python benchmarks/gpu_profile.py --agents qrc --populations 256 --top 20
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from throughput import paper_config

from rtu_core import Progress, train


def steps(events, count: int) -> None:
    """Advance a training run by ``count`` steps (one Progress event per step)."""
    seen = 0
    while seen < count:
        seen += isinstance(next(events), Progress)


def graphed_ms_per_step(agent: str, population: int, seconds: float) -> float:
    config = paper_config(agent, 10**7, population, device="cuda")
    config.progress_every = 1
    events = train(config)
    steps(events, 20)  # warm-up and recording
    torch.cuda.synchronize()
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        steps(events, 10)
        count += 10
    elapsed = time.perf_counter() - started
    events.close()
    return 1e3 * elapsed / count


def kernel_profile(agent: str, population: int, profiled: int = 20) -> dict[str, list[float]]:
    """{kernel name: [launches per step, µs per step]} of the eager step, over ``profiled`` steps."""
    config = paper_config(agent, 10**7, population, device="cuda", engine="eager")
    config.progress_every = 1
    events = train(config)
    steps(events, 5)
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profiler:
        steps(events, profiled)
        torch.cuda.synchronize()
    events.close()
    by_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for event in profiler.events():
        # kernels only: a record_function range (the optimiser's step) is drawn on the GPU's timeline too
        if event.device_type == torch.autograd.DeviceType.CUDA and not event.is_user_annotation:
            entry = by_name[event.name]
            entry[0] += 1 / profiled
            entry[1] += event.time_range.elapsed_us() / profiled
    return dict(by_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", nargs="+", default=["qrc", "stream_ac"])
    parser.add_argument("--populations", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=8, help="kernels listed per configuration")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_profile: torch sees no CUDA GPU here")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    for agent in args.agents:
        for population in args.populations:
            ms = graphed_ms_per_step(agent, population, args.seconds)
            by_name = kernel_profile(agent, population)
            count = sum(calls for calls, _ in by_name.values())
            kernel_ms = sum(us for _, us in by_name.values()) / 1e3
            print(
                f"\n{agent} P={population}: graphed step {ms:.2f} ms ({population / ms * 1e3:,.0f} agent-steps/s); "
                f"{count:.0f} kernels per step taking {kernel_ms:.2f} ms; "
                f"host, transfers and gaps {ms - kernel_ms:.2f} ms",
                flush=True,
            )
            for name, (calls, us) in sorted(by_name.items(), key=lambda item: -item[1][1])[: args.top]:
                print(f"  {us / 10 / kernel_ms:5.1f}%  {calls:5.1f}/step  {us:8.1f} µs/step  {name[:100]}")


if __name__ == "__main__":
    main()
