#!/usr/bin/env bash
# The GPU measurements of issue 16 as ONE command on the device machine (1 H200, 16 CPUs, no internet): about
# 8 minutes (each step has a limit: under 9 at worst), every result under $OUT (at most 8 files come back):
#   session.log        everything printed
#   environment.txt    nvidia-smi, versions of python / torch / transformers / datasets / pyarrow
#   cuda_tests.txt     the CUDA-marked tests and the device / resident tests on the GPU (CPU == CUDA synthesis)
#   train_smoke.txt    `td-detr train` on CUDA with --bf16 --features-on-device (synthetic data, 30 steps)
#   gpu_benchmark.json scripts/benchmark.py --device cuda: ours beside the official QD-DETR code, run cost
#   agreement.txt      scripts/cuda_cpu_agreement.py: how far fp32 CUDA outputs lie from the CPU's, and why
#   step_profile.*     scripts/step_profile.py --device cuda: operations, kernel launches, phase times of a step
#
# Before the call, on the CPU machine:  bash scripts/gpu_prepare.sh   (fills .gpu-carry/: official code + wheels)
# The call (device tool): run(command="bash scripts/gpu_session.sh", carry=[".gpu-carry"], timeout_s=540)
# Each step has its own time limit; a failing step is logged and the next one runs. docs/PERFORMANCE.md, "GPU".
# Environment: GPU_SMOKE=0 skips the train smoke run, GPU_BENCH_BUDGET_S (270) is the benchmark's --budget-s,
# GPU_BENCH_ARGS adds benchmark flags (default "--run-cost-steps 600 --task-timeout-s 300": the first GPU session's
# 2,000-step run cost of ours ran past its 240 s limit at 139 ms a step, and 600 steps hold one evaluation, at 452
# steps; in its second run both compiled variants ran past the 120 s task limit).
# The install and environment steps are scripts/gpu_env.sh (shared with scripts/gpu_study.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
GPU_LOG=session.log
. scripts/gpu_env.sh  # $OUT, step, install_carried_wheels, write_environment

install_carried_wheels
export PYTHONPATH=$PYTHONPATH:$PWD/tests
write_environment "$OUT/environment.txt"

step "CUDA tests: synthesizer CPU == CUDA, device flags, resident features"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/data/test_resident.py tests/commands/test_device_options.py \
  > "$OUT/cuda_tests.txt" 2>&1
echo "pytest exit $?"; tail -3 "$OUT/cuda_tests.txt"

step "CUDA vs CPU fp32 outputs: as they run, SDPA on its math backend, TF32 allowed"
timeout 60 python3 scripts/cuda_cpu_agreement.py > "$OUT/agreement.txt" 2>&1
echo "agreement exit $?"; cat "$OUT/agreement.txt"

step "an eager training step: operations, kernel launches and the time of each phase"
timeout 90 python3 scripts/step_profile.py --device cuda --json "$OUT/step_profile.json" > "$OUT/step_profile.txt" 2>&1
echo "step profile exit $?"; tail -7 "$OUT/step_profile.txt"

if [ "${GPU_SMOKE:-1}" = 1 ]; then
  step "td-detr train on CUDA: --bf16 --features-on-device, 30 steps of the synthetic demo"
  timeout 75 python3 -m td_detr train --max-steps 30 --bf16 --features-on-device --output-dir /tmp/train-smoke \
    --cache-dir /tmp/train-cache > "$OUT/train_smoke.txt" 2>&1
  echo "train exit $?"; tail -5 "$OUT/train_smoke.txt"
  python3 -c "import json; print('run.json execution:', json.load(open('/tmp/train-smoke/run.json'))['execution'])"
fi

budget=${GPU_BENCH_BUDGET_S:-270}
step "benchmark: ours beside the official code and the run cost (tasks in priority order; none starts after $budget s, all end by $((budget + 60)) s)"
# shellcheck disable=SC2086
python3 scripts/benchmark.py --device cuda --official-src .gpu-carry/qd-detr --run-cost --budget-s "$budget" \
  ${GPU_BENCH_ARGS---run-cost-steps 600 --task-timeout-s 300} --json "$OUT/gpu_benchmark.json"
echo "benchmark exit $?"
step "done"
