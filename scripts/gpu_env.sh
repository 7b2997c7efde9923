# Sourced (not run) by scripts/gpu_session.sh and scripts/gpu_study.sh on the device machine (1 H200, 16 CPUs, Python
# 3.12, no internet), from the repository root: $OUT, the `step` printer with elapsed seconds, the install of the
# wheels carried in .gpu-carry/wheels (scripts/gpu_prepare.sh) and of td-detr into $GPU_SITE, the offline
# environment, and environment.txt. The caller names its log: GPU_LOG=session.log . scripts/gpu_env.sh
#
# For a rehearsal on another machine: GPU_PYTHON (default python3) is the interpreter that has torch, GPU_SITE
# (default /tmp/site) where the wheels go; the wheels must fit that interpreter (gpu_prepare.sh's
# GPU_CARRY_PYTHON_VERSION).
GPU_PYTHON=${GPU_PYTHON:-python3}
GPU_SITE=${GPU_SITE:-/tmp/site}
OUT=${OUT:-/tmp/td-detr-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/${GPU_LOG:?name the log: GPU_LOG=NAME.log}") 2>&1
export PYTHONUNBUFFERED=1
gpu_begin=$SECONDS
step() { echo "=== [$((SECONDS - gpu_begin)) s] $*"; }

install_carried_wheels() {
  step "install the carried wheels (transformers >= 5.20, datasets and its pure-Python needs) into $GPU_SITE"
  [ -d .gpu-carry/wheels ] \
    || { echo ".gpu-carry/wheels missing: run scripts/gpu_prepare.sh first and carry .gpu-carry"; exit 2; }
  local wheels
  wheels=$(ls .gpu-carry/wheels/*.whl | grep -v fsspec)
  if ! "$GPU_PYTHON" - <<'PY'
from importlib.metadata import version
from packaging.version import Version
raise SystemExit(0 if Version(version("fsspec")) <= Version("2026.9.0") else 1)
PY
  then wheels="$wheels $(ls .gpu-carry/wheels/fsspec-*.whl)"; fi
  # shellcheck disable=SC2086
  "$GPU_PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$GPU_SITE" \
    $wheels || exit 3
  # td-detr itself, without dependencies: td_detr.__version__ reads the installed package's metadata
  "$GPU_PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade \
    --target "$GPU_SITE" . || exit 3
  export PYTHONPATH=$GPU_SITE
  export HF_HOME=/tmp/hf-home HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
}

write_environment() {  # nvidia-smi and the versions that ran, into $1 (and printed)
  step "environment"
  { nvidia-smi; "$GPU_PYTHON" - <<'PY'
import platform, torch, transformers, datasets, pyarrow
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__)
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
else:
    print("device: no CUDA GPU visible to torch")
import td_detr; print("td_detr from", td_detr.__file__)
PY
  } > "$1" 2>&1
  cat "$1"
}
