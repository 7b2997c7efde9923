"""The official QD-DETR code's side of `scripts/benchmark.py --official-src`: its driver started in its own process
(with the clock / bf16 patches asked for) and its figures put in ours."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmark_configs import BF16, OFFICIAL
from benchmark_measure import clock_name, run_worker

# The official driver is run through a boot line (the driver itself is not edited): `--clock cpu` makes its
# `time.perf_counter` read CPU time; a `BF16` key runs the official model's forward (class `QDDETR`) under the same bf16
# autocast as ours, its outputs cast back to fp32 so that the official criterion runs in fp32 as ours does.
CPU_CLOCK_PATCH = "import time; time.perf_counter = time.process_time"
OFFICIAL_BF16_PATCH = """
import torch
from torch.utils._pytree import tree_map
_call = torch.nn.Module.__call__
def _fp32(t):
    return t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t
def _call_bf16(self, *args, **kwargs):
    if type(self).__name__ != "QDDETR":
        return _call(self, *args, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return tree_map(_fp32, _call(self, *args, **kwargs))
torch.nn.Module.__call__ = _call_bf16
"""
RUN_DRIVER = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


def official_boot(cpu_clock: bool, bf16: bool) -> list[str]:
    """The interpreter arguments that start the official driver with the patches asked for (none: run it plainly)."""
    patches = ([CPU_CLOCK_PATCH] if cpu_clock else []) + ([OFFICIAL_BF16_PATCH] if bf16 else [])
    return ["-c", "\n".join(patches + [RUN_DRIVER])] if patches else []


def measure_official(key: str, source: Path, driver: Path, size: dict, repeats: dict, threads: int) -> dict:
    """The official model of `OFFICIAL[key]`, measured by the official-code driver in its own process (its training
    step: forward, criterion, weighted loss, backward, clip 0.1, AdamW on pre-collated batches), in our figures."""
    bf16 = key.endswith(BF16)
    label, variant = OFFICIAL[key.removesuffix(BF16)]
    boot = official_boot(cpu_clock=clock_name() == "cpu", bf16=bf16)
    command = [sys.executable, *boot, str(driver), "--src", str(source), "--child", variant, "--threads", str(threads),
               # the driver's generated windows need QVHighlights-length videos: 75 clips even in the dry run
               "--bsz", str(size["batch"]), "--clips", str(max(size["clips"], 75)), "--warmup", str(repeats["warmup"]),
               "--train-steps", str(repeats["train"]), "--latency-iters", str(repeats["infer_b1"]),
               "--throughput-iters", str(repeats["infer_b32"])]
    result, outside = run_worker(key, command, threads, marker="RESULT ")
    step_s, rows = result["train_ms_per_step"] / 1000, result["bsz"]
    figures = dict(
        parameters=result["params"], samples_seen_per_step=rows, train_step_s=step_s,
        train_step_per_row_s=step_s / rows, train_step_min_s=result["train_ms_min"] / 1000,
        train_samples_per_s=rows / step_s, original_samples_per_s=rows / step_s, infer_b1_ms=result["infer_b1_ms"],
        infer_b32_s=result["infer_b32_ms"] / 1000, infer_b32_samples_per_s=result["infer_b32_samples_per_s"],
        peak_rss_inference_mb=result["peak_rss_mb_infer"], peak_rss_training_mb=result["peak_rss_mb_train"],
    )
    conditions = dict(outside, threads=result["threads"], text_tokens=result["txt_len_padded"],
                      video_dim=result["v_feat_dim"], torch=result["torch"], final_loss=result.get("final_loss"))
    return dict(label=label + (", bf16 autocast" if bf16 else ""), figures=figures, raw=result, conditions=conditions)
