#!/usr/bin/env bash
# The GPU measurements of issue 16 as ONE command on the device machine (1 H200, 16 CPUs, no internet): about
# 7 minutes (each step has a limit: under 9 at worst), every result under $OUT (at most 8 files come back):
#   session.log        everything printed
#   environment.txt    nvidia-smi, versions of python / torch / transformers / datasets / pyarrow
#   cuda_tests.txt     the CUDA-marked tests and the device / resident tests on the GPU (CPU == CUDA synthesis)
#   train_smoke.txt    `td-detr train` on CUDA with --bf16 --features-on-device (synthetic data, 30 steps)
#   gpu_benchmark.json scripts/benchmark.py --device cuda: ours beside the official QD-DETR code, run cost
#
# Before the call, on the CPU machine:  bash scripts/gpu_prepare.sh   (fills .gpu-carry/: official code + wheels)
# The call (device tool): run(command="bash scripts/gpu_session.sh", carry=[".gpu-carry"], timeout_s=540)
# Each step has its own time limit; a failing step is logged and the next one runs. docs/PERFORMANCE.md, "GPU".
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/td-detr-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1
begin=$SECONDS
step() { echo "=== [$((SECONDS - begin)) s] $*"; }

step "install the carried wheels (transformers >= 5.20, datasets and its pure-Python needs)"
[ -d .gpu-carry/wheels ] || { echo ".gpu-carry/wheels missing: run scripts/gpu_prepare.sh first and carry .gpu-carry"; exit 2; }
wheels=$(ls .gpu-carry/wheels/*.whl | grep -v fsspec)
if ! python3 - <<'EOF'
from importlib.metadata import version
from packaging.version import Version
raise SystemExit(0 if Version(version("fsspec")) <= Version("2026.9.0") else 1)
EOF
then wheels="$wheels $(ls .gpu-carry/wheels/fsspec-*.whl)"; fi
# shellcheck disable=SC2086
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels || exit 3
# td-detr itself, without dependencies: td_detr.__version__ reads the installed package's metadata
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade --target /tmp/site . \
  || exit 3
export PYTHONPATH=/tmp/site:$PWD/tests
export HF_HOME=/tmp/hf-home HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

step "environment"
{ nvidia-smi; python3 - <<'EOF'
import platform, torch, transformers, datasets, pyarrow
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__)
print("device", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
import td_detr; print("td_detr from", td_detr.__file__)
EOF
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

step "CUDA tests: synthesizer CPU == CUDA, device flags, resident features"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/data/test_resident.py tests/commands/test_device_options.py \
  > "$OUT/cuda_tests.txt" 2>&1
echo "pytest exit $?"; tail -3 "$OUT/cuda_tests.txt"

step "td-detr train on CUDA: --bf16 --features-on-device, 30 steps of the synthetic demo"
timeout 75 python3 -m td_detr train --max-steps 30 --bf16 --features-on-device --output-dir /tmp/train-smoke \
  --cache-dir /tmp/train-cache > "$OUT/train_smoke.txt" 2>&1
echo "train exit $?"; tail -5 "$OUT/train_smoke.txt"
python3 -c "import json; print('run.json execution:', json.load(open('/tmp/train-smoke/run.json'))['execution'])"

step "benchmark: ours beside the official code and the run cost (tasks in priority order; none starts after 270 s, all end by 330 s)"
python3 scripts/benchmark.py --device cuda --official-src .gpu-carry/qd-detr --run-cost --budget-s 270 \
  --json "$OUT/gpu_benchmark.json"
echo "benchmark exit $?"
step "done"
