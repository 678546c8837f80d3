#!/usr/bin/env bash
# The reproduction runs at the paper's settings behind docs/results.md's "Paper vs us", one after another, the
# ones already under way first:
# - the RTRL staleness study on KMemoryChain (k = 4, 8, 16; QRC and Stream AC, plain and Taylor-corrected RTRL;
#   500k steps x 5 seeds);
# - the whole MemoryChain figure (L = 2 ... 128, 500k steps x 5 seeds, QRC);
# - POPGym (5 tasks x 1M steps x 3 seeds: Stream AC and QRC with RTU-RTRL and GRU-TBPTT(1), and PPO-RTU);
# - masked MuJoCo (Hopper and Walker2d, P and V, 500k steps x 3 seeds);
# - the two long-chain diagnostics of docs/method.md §8 at the full budget (RTU-RTRL, L = 64 and 128: initial r
#   near 1; discount 0.999), one population each, side by side.
# Results go to results/ (tracked: each finished run's config.json, summary.json and staleness.csv are committed, so
# they outlive the machine; episodes.csv and checkpoints/ are not, see .gitignore). Every population keeps a
# checkpoint, so stop it at any time (Ctrl-C or SIGTERM: each population saves its step
# first) and run it again: finished runs are skipped and the others continue. The populations of 10-18 members
# checkpoint every 10-20k steps (a few minutes of work each; a checkpoint takes about a second), so a sitting that
# ends without a signal loses little.
# On this project's 2-core machine, about 26 h from scratch (docs/performance.md: "What the paper's budgets cost here").
#
#     bash benchmarks/reproduce.sh            # with the project's .venv (make lab or make test creates it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

$PY benchmarks/staleness.py --steps 500000 --seeds 5 --k 4 8 16 --measure-every 997 --checkpoint-every 20000 \
    --workers 2 --out results/staleness_500k --plot assets/staleness_500k.png

$PY benchmarks/memory_chain.py --steps 500000 --seeds 5 --lengths 2 4 8 16 32 64 128 \
    --methods rtu-rtrl rtu-tbptt gru-tbptt ffn-tbptt --checkpoint-every 10000 --workers 2 \
    --out results/memory_chain_500k --plot assets/memory_chain_full.png

$PY benchmarks/popgym_comparison.py --steps 1000000 --seeds 3 \
    --tasks RepeatFirstEasy CountRecallEasy AutoencodeEasy ConcentrationEasy HigherLowerEasy \
    --agents stream_ac qrc --methods rtu-rtrl gru-tbptt --ppo-cells rtu --checkpoint-every 50000 --workers 2 \
    --out results/popgym_1m --plot assets/popgym_1m.png

$PY benchmarks/masked_mujoco.py --steps 500000 --seeds 3 --robots Hopper Walker2d --masks P V \
    --methods rtu-rtrl gru-tbptt --ppo-cells rtu --checkpoint-every 50000 --workers 2 \
    --out results/mujoco_500k --plot assets/mujoco_500k.png

$PY benchmarks/memory_chain.py --steps 500000 --seeds 5 --lengths 64 128 --methods rtu-rtrl --rtu-r-min 0.99 \
    --checkpoint-every 10000 --workers 1 --out results/memory_chain_500k_r099 &
near_one=$!
$PY benchmarks/memory_chain.py --steps 500000 --seeds 5 --lengths 64 128 --methods rtu-rtrl --gamma 0.999 \
    --checkpoint-every 10000 --workers 1 --out results/memory_chain_500k_g0999 &
long_discount=$!
wait "$near_one" && wait "$long_discount"
