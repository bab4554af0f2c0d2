#!/usr/bin/env bash
# The GPU check, in one call on a GPU machine where nothing can be installed (CuPy,
# PyTorch, NumPy and pytest are there): the gpu-marked tests with real launches, then the
# kernel benchmarks against cuDNN/cuBLAS. Writes everything into OUTDIR. About 5 minutes
# on an H100.
#
#     bash bench/gpu_check.sh OUTDIR
set -uo pipefail
out=${1:?usage: bench/gpu_check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
# Nothing is installed there: the package `deepinside` is the repository root, importable
# through a link of that name in a temporary folder; tests/ holds the PyTorch twins.
path=$(mktemp -d) && ln -s "$PWD" "$path/deepinside"
export PYTHONPATH="$path:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" DEEPINSIDE_CACHE="$out/.cache"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python -c "import cupy, torch; print('cupy', cupy.__version__, 'torch', torch.__version__)"; } > "$out/device.txt" 2>&1
timeout 240 python -m pytest -m gpu tests/test_cuda_kernels.py -q -rs -p no:cacheprovider > "$out/gpu_tests.txt" 2>&1
tests=$?
timeout 300 python bench/gpu_kernels.py "$out" > "$out/gpu_kernels.log" 2>&1
bench=$?
ladder=0
for family in gemm conv_forward conv_backward_data conv_backward_weights relu; do
  timeout 120 python -m deepinside.kernels.ladder "$family" > "$out/ladder_$family.md" 2>&1 || ladder=1
  cat "$out/ladder_$family.md"
done
tail -n 3 "$out/gpu_tests.txt"
cat "$out/gpu_kernels.md" 2>/dev/null || tail -n 30 "$out/gpu_kernels.log"
echo "gpu tests exit $tests, benchmarks exit $bench, ladders exit $ladder"
[ "$tests" = 0 ] && [ "$bench" = 0 ] && [ "$ladder" = 0 ]
