#!/usr/bin/env bash
# Issue 19's main comparison at QD-DETR's width (hidden 256) as ONE command on the device machine (1 H200, 16 CPUs,
# no internet): scripts/ablate.py on the default `study` plan (1280 spurious_hard training queries, until converged,
# cap 60 rounds), settings baseline_256, baseline_256_equal_samples and full_256, 5 seeds each = 15 runs, all on CUDA.
#
# Before the call, on the CPU machine:  bash scripts/gpu_prepare.sh   (fills .gpu-carry/ with the wheels, ~16 MB)
# The call (device tool), from the checkout the session runs in:
#   run(command="bash scripts/gpu_study.sh", carry=[".gpu-carry"], timeout_s=590)
# A later session that already has some records (merged into runs/gpu-study, below) carries them, and the finished
# runs are skipped (same fingerprint), so only the missing ones train:
#   run(command="bash scripts/gpu_study.sh", carry=[".gpu-carry", "runs/gpu-study/runs"], timeout_s=590)
#
# What comes back under $OUT (3 files): study.log (everything printed), environment.txt (nvidia-smi, versions) and
# gpu-study.tar.gz: gpu-study/{runs/*.json, summary.json, summary.md, results.json, data/README.md,
# data/dataset_info.json, work/*.log (each run's output), study.log, environment.txt} and predictions/ while the
# tarball stays under 15 MiB. Every run record is written atomically when its run ends, so a study stopped by the
# time limit still returns its finished runs (and a summary of them). Unpack and merge on the CPU machine:
#   python scripts/merge_runs.py /work/.device/.../gpu-study.tar.gz --into runs/gpu-study   (files_at of the reply)
#   python scripts/ablate.py --summarize-only --results-dir runs/gpu-study
# merge_runs.py refuses (exit 2) a record whose run the folder holds with another fingerprint (a CPU run of the same
# setting and seed: --device enters the fingerprint) and data whose README differs.
#
# Time (NOT measured: no session had a device yet). Each run is one Python process driving small kernels (6.8-7.5 M
# parameters, batch 32 + 16 synthesized rows), so it is launch- and CPU-bound: guessed 30-50 ms a step alone, 50-150 ms
# with 15 processes time-sharing the GPU, plus ~1-2 s of evaluation and checkpoint a round and ~1 min of process
# starts and the two evaluation commands. The baselines stop after 21-30 rounds (840-1,200 steps: ~2-4 min), the
# equal-samples baseline takes 1.5x the steps a round (~3-6 min), the full model may run to the 60-round cap (2,400
# steps: ~5-9 min). The study gets what is left of the call's limit after the install (~30 s), the CUDA preflight
# (~30 s) and the packing reserve (60 s): about 7.5 minutes, so expect the baselines back and the full-model runs only
# if steps are at the fast end. The log prints each running run's step count and speed every 30 s, so the next call
# can be sized (e.g. STUDY_PLAN_ARGS="--seeds 3,4" with the finished records carried).
#
# --jobs 15 --threads 1: one run per CPU core (15 of 16; the last one for the driver, tee and nvidia-smi), all 15 runs
# at once. Each run keeps one core busy and the H200 mostly idle, so 15 side by side is the most GPU work per minute;
# fewer jobs would leave runs waiting for a second wave that the time limit does not allow. GPU memory: about 1-2 GB a
# process (CUDA context, model, optimizer, features), ~30 GB of the 139.
#
# Settings (environment): STUDY_DEVICE (cuda), STUDY_JOBS (15), STUDY_DIR (runs/gpu-study: in the repository and
# ignored by git, so a warm rerun resumes), STUDY_SETTINGS (the --only list; default the three hidden-256 settings,
# e.g. "synthesis_similarity,dynamics_only" for the hidden-64 components), STUDY_PLAN_ARGS (extra ablate.py flags:
# "--seeds 0,1,2", or "--dry-run" for a rehearsal), STUDY_LIMIT_S (590: the call's timeout_s; the study stops STUDY_PACK_S=60 s before it: 10 s for
# its processes to end, up to 30 s to summarize, then the packing), STUDY_PREFLIGHT (1: first a 2-step dry run of
# full_256 on the device, ~30 s, so a broken CUDA path costs seconds, not the call). Rehearsal on the CPU machine
# (docs/PERFORMANCE.md, "GPU run of the hidden-256 comparison"):
#   GPU_CARRY_PYTHON_VERSION=3.11 bash scripts/gpu_prepare.sh
#   OUT=/tmp/gpu-study-out GPU_PYTHON=$PWD/.venv/bin/python GPU_SITE=/tmp/gpu-study-site STUDY_DEVICE=cpu STUDY_JOBS=3 \
#     STUDY_DIR=/tmp/gpu-study-rehearsal STUDY_PLAN_ARGS=--dry-run bash scripts/gpu_study.sh
set -uo pipefail
cd "$(dirname "$0")/.."
GPU_LOG=study.log
. scripts/gpu_env.sh  # $OUT, step, install_carried_wheels, write_environment
STUDY_DEVICE=${STUDY_DEVICE:-cuda}
STUDY_JOBS=${STUDY_JOBS:-15}
STUDY_DIR=${STUDY_DIR:-runs/gpu-study}
STUDY_PLAN_ARGS=${STUDY_PLAN_ARGS:-}
STUDY_LIMIT_S=${STUDY_LIMIT_S:-590}
STUDY_PACK_S=${STUDY_PACK_S:-60}
STUDY_PREFLIGHT=${STUDY_PREFLIGHT:-1}
SETTINGS=${STUDY_SETTINGS:-baseline_256,baseline_256_equal_samples,full_256}
mkdir -p "$STUDY_DIR"
STUDY_DIR=$(cd "$STUDY_DIR" && pwd)

install_carried_wheels
write_environment "$OUT/environment.txt"

progress() {  # every 30 s: finished records, the GPU's load, each running run's last step count and speed
  while sleep 30; do
    gpu=$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null || echo none)
    step "progress: $(ls "$STUDY_DIR"/runs/*.json 2>/dev/null | wc -l) run(s) finished;" \
      "load $(cut -d' ' -f1 /proc/loadavg); GPU $gpu"
    for log in "$STUDY_DIR"/work/*.log; do
      [ -e "${log%.log}" ] || continue  # finished: its work folder is gone
      steps=$(grep -oE '[0-9]+ optimizer steps' "$log" | head -1 | cut -d' ' -f1)  # train's own bar, not others'
      echo "    $(basename "${log%.log}"): $(tr '\r' '\n' < "$log" | grep -oE "[0-9]+/${steps:-?} \[[^]]*\]" | tail -1)"
    done
  done
}

study_ok=1
if [ "$STUDY_PREFLIGHT" = 1 ]; then
  step "preflight: a 2-step dry run of full_256 on $STUDY_DEVICE (train, evaluate, spurious-eval, run record)"
  rm -rf /tmp/gpu-study-preflight
  timeout -k 10 150 "$GPU_PYTHON" scripts/ablate.py --dry-run --device "$STUDY_DEVICE" --only full_256 --threads 1 \
    --results-dir /tmp/gpu-study-preflight > "$STUDY_DIR/preflight.log" 2>&1
  code=$?
  if [ $code -eq 0 ] && [ -s /tmp/gpu-study-preflight/runs/full_256__seed0.json ]; then
    tail -4 "$STUDY_DIR/preflight.log"
  else
    tail -40 "$STUDY_DIR/preflight.log"
    echo "preflight failed (exit $code): the study does not start; see preflight.log in the tarball"
    study_ok=0
  fi
fi

left=$((STUDY_LIMIT_S - STUDY_PACK_S - (SECONDS - gpu_begin)))
if [ $study_ok = 1 ] && [ $left -ge 60 ]; then
  step "study: $SETTINGS x the plan's seeds on $STUDY_DEVICE, $STUDY_JOBS at a time, stopped after $left s"
  progress &
  ticker=$!
  # shellcheck disable=SC2086
  timeout -k 10 "$left" "$GPU_PYTHON" scripts/ablate.py --device "$STUDY_DEVICE" --jobs "$STUDY_JOBS" --threads 1 \
    --results-dir "$STUDY_DIR" --only "$SETTINGS" $STUDY_PLAN_ARGS
  code=$?
  pkill -P "$ticker" sleep; kill "$ticker" 2>/dev/null  # the ticker and its sleep, by their process ids
  case $code in
    0) step "study finished" ;;
    124|137) step "study stopped at its time limit: the finished runs come back" ;;
    *) step "study exited $code (a failed run stops new ones; the finished runs come back)" ;;
  esac
  if [ $code -ne 0 ] && ls "$STUDY_DIR"/runs/*.json > /dev/null 2>&1; then
    step "summary of the finished runs"
    timeout 30 "$GPU_PYTHON" scripts/ablate.py --summarize-only --results-dir "$STUDY_DIR" | tail -25
  fi
elif [ $study_ok = 1 ]; then
  step "only $left s left before packing: the study does not start"
fi

step "pack: $(ls "$STUDY_DIR"/runs/*.json 2>/dev/null | wc -l) run record(s)"
cp "$OUT/environment.txt" "$STUDY_DIR/environment.txt"
cp "$OUT/study.log" "$STUDY_DIR/study.log"
name=$(basename "$STUDY_DIR")
pack() {  # pack [predictions]: the files that exist, into $OUT/gpu-study.tar.gz
  ( cd "$STUDY_DIR/.." || exit 1
    for path in runs summary.json summary.md results.json data/README.md data/dataset_info.json study.log \
                environment.txt preflight.log "$@"; do
      [ -e "$name/$path" ] && echo "$name/$path"
    done
    ls "$name"/work/*.log 2>/dev/null ) > /tmp/gpu-study-files.$$
  tar -czf "$OUT/gpu-study.tar.gz" -C "$STUDY_DIR/.." -T /tmp/gpu-study-files.$$
}
pack predictions
if [ "$(stat -c %s "$OUT/gpu-study.tar.gz")" -gt $((15 * 1024 * 1024)) ]; then
  echo "over 15 MiB with the predictions: packed without them"
  pack
fi
ls -l "$OUT"
step "done"
