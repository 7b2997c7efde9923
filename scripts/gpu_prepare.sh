#!/usr/bin/env bash
# Run on the CPU machine (it has pip access), from the repository root, before the one device call of
# scripts/gpu_session.sh. It fills .gpu-carry/ (ignored by git), which the device call carries:
#   .gpu-carry/qd-detr/   the official QD-DETR code (../shared does not travel to the device machine);
#   .gpu-carry/wheels/    Python 3.12 wheels of what the device image lacks or has too old (its transformers is 5.17,
#                         we need >= 5.20, with regex >= 2025.10.22; datasets, dill and multiprocess are missing;
#                         fsspec is installed there only when its own is newer than datasets allows), at the versions
#                         of the environment that runs this script (the one the CPU tests passed in). pyarrow (55 MB)
#                         does not fit the 64 MiB: the device's own is used (datasets checks no version; gpu_session.sh
#                         prints it).
# The whole carried tree must stay under the device tool's 64 MiB (this prints its size).
# GPU_CARRY_PYTHON_VERSION=3.11 fetches wheels for this machine's Python instead: only to rehearse gpu_study.sh here.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d ../shared/reference/qd-detr/qd_detr ] || { echo "../shared/reference/qd-detr not found" >&2; exit 2; }
rm -rf .gpu-carry
mkdir -p .gpu-carry/wheels
cp -r ../shared/reference/qd-detr .gpu-carry/qd-detr
find .gpu-carry/qd-detr -name __pycache__ -prune -exec rm -rf {} +
pins=$(python3 - <<'EOF'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in
               ("transformers", "datasets", "dill", "multiprocess", "fsspec", "regex")))
EOF
)
echo "wheels: $pins"
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_CARRY_PYTHON_VERSION:-3.12}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .gpu-carry/wheels $pins
du -sh .gpu-carry .gpu-carry/wheels/* | sort -h
echo "repository + .gpu-carry: $(du -sm --exclude=.git --exclude=.venv --exclude='td-detr-*' . | cut -f1) MiB (limit 64)"
