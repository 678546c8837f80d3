#!/usr/bin/env bash
# What a lent GPU machine checks, in one short run: the GPU tests (tests/test_graphs.py, tests/test_device.py), then
# benchmarks/gpu_throughput.py and benchmarks/gpu_profile.py. Writes gpu_tests.txt, gpu_throughput.txt and
# gpu_profile.txt into the folder given (default: .).
#     bash benchmarks/gpu_check.sh OUT_DIR [gpu_throughput.py arguments]
set -uo pipefail
out=${1:-.}
shift || true
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout 150 python3 -m pytest -q -o addopts="-ra" -p no:cacheprovider tests/test_graphs.py tests/test_device.py \
    2>&1 | tee "$out/gpu_tests.txt"
timeout 200 python3 benchmarks/gpu_throughput.py "$@" 2>&1 | tee "$out/gpu_throughput.txt"
timeout 110 python3 benchmarks/gpu_profile.py 2>&1 | tee "$out/gpu_profile.txt"
