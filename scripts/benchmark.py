"""One CPU benchmark of TD-DETR: training, inference, scoring and memory, each next to a reference from the same run.

Measured for the default QVHighlights-sized model (``TDDetrConfig()``: 2816-d video + TEF, 512-d text, 4/4/4 layers)
and three references, each in a fresh process (so its peak RSS is its own):

* ``td_detr``               TD-DETR as configured by default (dynamics on, video synthesis on)
* ``td_detr_no_synthesis``  the same model trained without the synthesizer
* ``qd_detr_2l``            ``TDDetrConfig.qd_detr_baseline()``: QD-DETR as released (2/2/2, no dynamics, no synthesis)
* ``qd_detr_4l``            the QD-DETR architecture at TD-DETR's depth (4/4/4)
* ``td_detr_checkpointing`` TD-DETR with activation checkpointing
* ``td_detr_row_chunks``    TD-DETR with the step's forward / backward in chunks of 16 rows (``td_detr.row_chunks``)

Training step = collate (with synthesis where configured) + forward + loss + backward + grad-norm clip 0.1 + AdamW
step, on 32 rows of generated features (75 clips, 32 tokens). Synthesis grows the batch to 2x rows (~1.5x with
``synthesis_keep_originals``), so figures are given per sample the model sees and per original batch of 32. Inference = eval-mode forward (no negative pass,
no post-processing) on pre-collated batches of 1 and 32. Scoring = ``evaluate_submission`` on the 1550-query val
reference predictions (generated ones of the same shape when ../shared/data is absent) next to the naive
per-query loop of ``scripts/benchmark_metrics.py``. Every figure is the median of the repeats, warm-up excluded.

With ``--official-src`` (the official QD-DETR code, ``../shared/reference/qd-detr``) the official model is measured in
the same run, 2/2/2 and 4/4/4, each in its own process, alternating with ours round by round, by the driver beside it
(``qd_detr_speed.py``: official options, label functions and collate, the official train loop's step), and the report
gives ours / official ratios from that run. ``--compile`` also measures every config of ours under ``torch.compile``
(compile time reported apart from the step). ``--bf16`` also measures every config of ours and both official models
with the forward under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (the official criterion on fp32 outputs, as
ours), alternating with the fp32 ones. Our configs use ``--dropout-implementation`` (default ``fast_cpu``).

    # the issue-15 runs (docs/PERFORMANCE.md): ~22 min each on the shared 2-vCPU machine at load 5-8
    python scripts/benchmark.py --threads 1 --clock cpu --bf16 --official-src ../shared/reference/qd-detr \
        --configs td_detr,td_detr_row_chunks,qd_detr_2l,qd_detr_4l --json docs/benchmarks/run1.json

    python scripts/benchmark.py --rounds 2 --official-src ../shared/reference/qd-detr   # ours beside the official code
    python scripts/benchmark.py                     # full: not timed alone (the issue-15 runs above took 14-22 min)
    python scripts/benchmark.py --quick             # 54 s on the idle 2-core machine (load 1.4), longer when cores are shared
    python scripts/benchmark.py --dry-run --json o.json   # ~25 s on 2 shared cores: tiny sizes, 1 repeat, one process
    python scripts/benchmark.py --rounds 2 --json o.json  # on a shared machine: each config twice, fastest kept
    python scripts/benchmark.py --device cuda ...    # the GPU harness, scripts/benchmark_gpu.py (its docstring)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
DATA = SCRIPTS.parent / ".." / "shared" / "data" / "qvhighlights"

CONFIGS = {
    "td_detr": ("TD-DETR 4/4/4, dynamics, synthesis", dict()),
    "td_detr_no_synthesis": ("TD-DETR 4/4/4, synthesis off", dict(synthesis_pairing="none")),
    "qd_detr_2l": ("QD-DETR baseline 2/2/2", dict(baseline=True)),
    "qd_detr_4l": ("QD-DETR arch 4/4/4", dict(baseline=True, t2v_layers=4, encoder_layers=4, decoder_layers=4)),
    "td_detr_checkpointing": ("TD-DETR 4/4/4, activation checkpointing", dict(activation_checkpointing=True)),
    "td_detr_row_chunks": ("TD-DETR 4/4/4, row chunks of 16", dict(row_chunk_size=16)),
}

# The official code's models (``--official-src``), measured by its driver: key -> (label, ENCxDEC variant).
OFFICIAL = {
    "official_2l": ("official QD-DETR 2/2/2", "2x2"),
    "official_4l": ("official QD-DETR 4/4/4", "4x4"),
}

COMPILED = "_compiled"  # suffix of a config measured under torch.compile
BF16 = "_bf16"  # suffix of a config (ours or official) whose forward runs under torch.autocast("cpu", bfloat16)

# Problem sizes. The dry run shrinks everything (model too) but keeps the layer counts of each config.
SIZES = {
    "real": dict(batch=32, clips=75, tokens=32, video_dims=(2304, 512), text_dim=512, queries=1550, model={}),
    "tiny": dict(batch=4, clips=20, tokens=6, video_dims=(16, 8), text_dim=8, queries=40,
                 model=dict(hidden_size=16, num_attention_heads=2, ffn_dim=32, num_queries=5)),
}
# Measured repeats (each preceded by `warmup` unmeasured ones).
REPEATS = {
    "full": dict(train=8, infer_b1=30, infer_b32=5, score=5, naive=2, warmup=1, naive_warmup=1),
    "quick": dict(train=2, infer_b1=10, infer_b32=1, score=2, naive=1, warmup=1, naive_warmup=0),
    "dry": dict(train=1, infer_b1=1, infer_b32=1, score=1, naive=1, warmup=1, naive_warmup=0),
}

# (name, numerator, denominator): paths into the results; the value is numerator / denominator.
RATIOS = [
    ("train step: TD-DETR / QD-DETR 2L", "configs.td_detr.train_step_s", "configs.qd_detr_2l.train_step_s"),
    ("train step: TD-DETR / QD-DETR arch 4L", "configs.td_detr.train_step_s", "configs.qd_detr_4l.train_step_s"),
    ("train step: synthesis on / off", "configs.td_detr.train_step_s", "configs.td_detr_no_synthesis.train_step_s"),
    ("train step: dynamics (no synth) / QD-DETR arch 4L", "configs.td_detr_no_synthesis.train_step_s",
     "configs.qd_detr_4l.train_step_s"),
    ("train step: QD-DETR 4L / 2L", "configs.qd_detr_4l.train_step_s", "configs.qd_detr_2l.train_step_s"),
    ("seen samples/s: synthesis on / off", "configs.td_detr.train_samples_per_s",
     "configs.td_detr_no_synthesis.train_samples_per_s"),
    ("seen samples/s: TD-DETR / QD-DETR 2L", "configs.td_detr.train_samples_per_s",
     "configs.qd_detr_2l.train_samples_per_s"),
    ("collate: synthesis on / off", "configs.td_detr.collate_s", "configs.td_detr_no_synthesis.collate_s"),
    ("synthesizer share of the TD-DETR step", "configs.td_detr.collate_s", "configs.td_detr.train_step_s"),
    ("infer b=1: TD-DETR / QD-DETR 2L", "configs.td_detr.infer_b1_ms", "configs.qd_detr_2l.infer_b1_ms"),
    ("infer b=1: TD-DETR / QD-DETR arch 4L", "configs.td_detr.infer_b1_ms", "configs.qd_detr_4l.infer_b1_ms"),
    ("infer b=1: same model measured twice (noise)", "configs.td_detr.infer_b1_ms",
     "configs.td_detr_no_synthesis.infer_b1_ms"),
    ("infer b=32 samples/s: TD-DETR / QD-DETR 2L", "configs.td_detr.infer_b32_samples_per_s",
     "configs.qd_detr_2l.infer_b32_samples_per_s"),
    ("infer b=32 samples/s: TD-DETR / QD-DETR arch 4L", "configs.td_detr.infer_b32_samples_per_s",
     "configs.qd_detr_4l.infer_b32_samples_per_s"),
    ("parameters: TD-DETR / QD-DETR 2L", "configs.td_detr.parameters", "configs.qd_detr_2l.parameters"),
    ("parameters: TD-DETR / QD-DETR arch 4L", "configs.td_detr.parameters", "configs.qd_detr_4l.parameters"),
    ("peak RSS training: TD-DETR / QD-DETR 2L", "configs.td_detr.peak_rss_training_mb",
     "configs.qd_detr_2l.peak_rss_training_mb"),
    ("peak RSS training: synthesis on / off", "configs.td_detr.peak_rss_training_mb",
     "configs.td_detr_no_synthesis.peak_rss_training_mb"),
    ("peak RSS training: TD-DETR / QD-DETR arch 4L", "configs.td_detr.peak_rss_training_mb",
     "configs.qd_detr_4l.peak_rss_training_mb"),
    ("peak RSS training: TD-DETR checkpointing / QD-DETR arch 4L", "configs.td_detr_checkpointing.peak_rss_training_mb",
     "configs.qd_detr_4l.peak_rss_training_mb"),
    ("train step: TD-DETR checkpointing / plain", "configs.td_detr_checkpointing.train_step_s",
     "configs.td_detr.train_step_s"),
    ("peak RSS training: TD-DETR row chunks / QD-DETR arch 4L", "configs.td_detr_row_chunks.peak_rss_training_mb",
     "configs.qd_detr_4l.peak_rss_training_mb"),
    ("train step: TD-DETR row chunks / plain", "configs.td_detr_row_chunks.train_step_s",
     "configs.td_detr.train_step_s"),
    ("scoring: naive loop / vectorised", "scoring.naive_s", "scoring.vectorised_s"),
]


# Ours against the official code, both measured in this run (only with --official-src).
OFFICIAL_RATIOS = [
    ("train step 2/2/2: ours / official", "configs.qd_detr_2l.train_step_s", "configs.official_2l.train_step_s"),
    ("train step 4/4/4: ours / official", "configs.qd_detr_4l.train_step_s", "configs.official_4l.train_step_s"),
    ("TD-DETR step per row seen / official 4/4/4 step per row", "configs.td_detr.train_step_per_row_s",
     "configs.official_4l.train_step_per_row_s"),
    ("TD-DETR row chunks step per row seen / official 4/4/4 step per row",
     "configs.td_detr_row_chunks.train_step_per_row_s", "configs.official_4l.train_step_per_row_s"),
    ("infer b=1 2/2/2: ours / official", "configs.qd_detr_2l.infer_b1_ms", "configs.official_2l.infer_b1_ms"),
    ("infer b=1 4/4/4: ours / official", "configs.qd_detr_4l.infer_b1_ms", "configs.official_4l.infer_b1_ms"),
    ("infer b=1 TD-DETR / official 4/4/4", "configs.td_detr.infer_b1_ms", "configs.official_4l.infer_b1_ms"),
    ("infer b=32 samples/s 4/4/4: ours / official", "configs.qd_detr_4l.infer_b32_samples_per_s",
     "configs.official_4l.infer_b32_samples_per_s"),
    ("peak RSS training 4/4/4: ours / official", "configs.qd_detr_4l.peak_rss_training_mb",
     "configs.official_4l.peak_rss_training_mb"),
    ("peak RSS training: TD-DETR / official 4/4/4", "configs.td_detr.peak_rss_training_mb",
     "configs.official_4l.peak_rss_training_mb"),
    ("parameters 2/2/2: ours / official", "configs.qd_detr_2l.parameters", "configs.official_2l.parameters"),
]


# With --bf16: our configs under bf16 autocast against the official code in fp32 (the issue's targets) and under the
# same autocast (how much is the dtype, how much our code), and against themselves in fp32.
BF16_RATIOS = [
    (f"{what}: ours bf16 / official {precision}", f"configs.{ours}{BF16}.{figure}", f"configs.{official}{suffix}.{figure}")
    for precision, suffix in (("fp32", ""), ("bf16", BF16))
    for what, ours, official, figure in (
        ("train step 2/2/2", "qd_detr_2l", "official_2l", "train_step_s"),
        ("train step 4/4/4", "qd_detr_4l", "official_4l", "train_step_s"),
        ("TD-DETR step per row seen / official 4/4/4 per row", "td_detr", "official_4l", "train_step_per_row_s"),
        ("infer b=1 2/2/2", "qd_detr_2l", "official_2l", "infer_b1_ms"),
        ("infer b=1 4/4/4", "qd_detr_4l", "official_4l", "infer_b1_ms"),
        ("peak RSS training 4/4/4", "qd_detr_4l", "official_4l", "peak_rss_training_mb"),
    )
] + [
    ("official train step 2/2/2: bf16 / fp32", f"configs.official_2l{BF16}.train_step_s", "configs.official_2l.train_step_s"),
    ("official train step 4/4/4: bf16 / fp32", f"configs.official_4l{BF16}.train_step_s", "configs.official_4l.train_step_s"),
] + [
    (f"{name}: bf16 / fp32", f"configs.{key}{BF16}.{figure}", f"configs.{key}.{figure}")
    for key in CONFIGS
    for name, figure in ((f"train step {key}", "train_step_s"), (f"infer b=1 {key}", "infer_b1_ms"),
                         (f"peak RSS training {key}", "peak_rss_training_mb"))
] + [
    ("peak RSS training bf16: TD-DETR / QD-DETR arch 4L", f"configs.td_detr{BF16}.peak_rss_training_mb",
     f"configs.qd_detr_4l{BF16}.peak_rss_training_mb"),
    ("train step bf16: TD-DETR / QD-DETR arch 4L", f"configs.td_detr{BF16}.train_step_s",
     f"configs.qd_detr_4l{BF16}.train_step_s"),
    ("peak RSS training bf16: TD-DETR row chunks / QD-DETR arch 4L", f"configs.td_detr_row_chunks{BF16}.peak_rss_training_mb",
     f"configs.qd_detr_4l{BF16}.peak_rss_training_mb"),
    ("TD-DETR row chunks step per row seen / official 4/4/4 per row: ours bf16 / official fp32",
     f"configs.td_detr_row_chunks{BF16}.train_step_per_row_s", "configs.official_4l.train_step_per_row_s"),
]


def load_script(name: str):
    """Import a sibling script (``scripts/<name>.py``) as a module, to reuse its helpers."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# `--clock cpu`: every timing is CPU seconds of the measuring process (`time.process_time`), ours and the official
# code's alike. On a machine shared with other work a process gets a varying share of the cores, which moves wall
# times by tens of percent between processes; with 1 thread its CPU time per step barely moves.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]
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


def timed(fn, repeats: int, warmup: int) -> tuple[list[float], object]:
    """Seconds of each measured call (after `warmup` unmeasured calls) and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = clock()
        result = fn()
        times.append(clock() - start)
    return times, result


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def build_config(key: str, size: dict, dropout_implementation: str = "torch"):
    from td_detr import TDDetrConfig

    overrides = dict(CONFIGS[key][1], dropout_implementation=dropout_implementation)
    baseline = overrides.pop("baseline", False)
    overrides.pop("activation_checkpointing", False)  # a model setting, applied in measure_config
    overrides.pop("row_chunk_size", None)  # a training-step setting (TDDetrTrainer(row_chunk_size=...))
    overrides.update(size["model"])
    overrides.update(video_feature_size=sum(size["video_dims"]), text_feature_size=size["text_dim"])
    return TDDetrConfig.qd_detr_baseline(**overrides) if baseline else TDDetrConfig(**overrides)




def autocast_context(bf16: bool):
    """bf16 autocast on the CPU (GEMMs, attention and PReLU in bf16; our heads, losses and matcher stay fp32), or
    nothing."""
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def measure_config(key: str, size: dict, repeats: dict, threads: int, dropout_implementation: str = "fast_cpu") -> dict:
    """Parameters, inference, training step and peak RSS of one config (call it in a fresh process for the RSS).
    A key ending in `COMPILED` runs the model under `torch.compile`; its first call of each kind (the compile) is
    timed apart, as `compile_*_s`. A key ending in `BF16` runs every forward (inference, and the training step's
    forward and loss) under bf16 autocast; the backward and the optimizer step run outside it, as torch advises."""
    import numpy as np
    import torch

    from td_detr import TDDetrForMomentRetrieval
    from td_detr.data.collator import DataCollatorForMomentRetrieval
    from td_detr.row_chunks import chunked_forward_backward

    torch.set_num_threads(threads)
    bf16 = key.endswith(BF16)
    key = key.removesuffix(BF16)
    compiled = key.endswith(COMPILED)
    key = key.removesuffix(COMPILED)
    config = build_config(key, size, dropout_implementation)
    rows = load_script("benchmark_collator").make_rows(
        size["batch"], np.random.default_rng(0), clips=size["clips"], dims=size["video_dims"],
        text=(size["tokens"], size["text_dim"]),
    )
    torch.manual_seed(0)
    model = TDDetrForMomentRetrieval(config)
    if CONFIGS[key][1].get("activation_checkpointing"):
        model.activation_checkpointing_enable()
    train_collator = DataCollatorForMomentRetrieval.from_config(config, training=True)
    eval_collator = DataCollatorForMomentRetrieval.from_config(config, training=False)
    warmup = repeats["warmup"]
    rss_setup = peak_rss_mb()
    if compiled:  # the encoder-decoder; the loss's Hungarian matching (scipy) cannot be traced
        model.model.compile()
    run = model
    compile_times = {}

    # Inference first, so its peak RSS is not hidden by the (larger) training peak.
    model.eval()
    strip = lambda batch: {k: v for k, v in batch.items() if k not in ("labels", "meta")}  # noqa: E731
    single, full = strip(eval_collator(rows[:1])), strip(eval_collator(rows))
    with torch.no_grad(), autocast_context(bf16):  # not inference_mode: compiled graphs must not see inference tensors
        if compiled:
            compile_times["compile_inference_s"] = sum(timed(lambda: run(**b), 1, 0)[0][0] for b in (single, full))
        b1_times, _ = timed(lambda: run(**single), repeats["infer_b1"], 2 * warmup)
        b32_times, _ = timed(lambda: run(**full), repeats["infer_b32"], warmup)
    rss_inference = peak_rss_mb()

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    chunk_rows = CONFIGS[key][1].get("row_chunk_size")
    collate_times, seen, loss_values = [], [], []

    def step():
        start = clock()
        batch = train_collator(rows)
        collate_times.append(clock() - start)
        batch.pop("meta")
        seen.append(batch["video_features"].shape[0])
        optimizer.zero_grad(set_to_none=True)
        if chunk_rows:  # as TDDetrTrainer(row_chunk_size=...): forward and backward per chunk of rows
            loss, _ = chunked_forward_backward(run, batch, chunk_rows, forward_context=lambda: autocast_context(bf16))
        else:
            with autocast_context(bf16):
                loss = run(**batch).loss
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        loss_values.append(loss.detach())

    if compiled:
        compile_times["compile_training_s"] = timed(step, 1, 0)[0][0]
        collate_times.clear(), seen.clear()
    load_before, cpu_before, wall_before = os.getloadavg()[0], time.process_time(), time.perf_counter()
    step_times, _ = timed(step, repeats["train"], warmup)
    # CPU seconds per wall second while training: ~threads on an idle machine, less when others take the cores.
    cpu_per_wall = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
    collate_times, seen = collate_times[warmup:], seen[warmup:]

    step_s, collate_s = statistics.median(step_times), statistics.median(collate_times)
    seen_per_step = statistics.median(seen)
    figures = dict(
        parameters=sum(p.numel() for p in model.parameters()),
        samples_seen_per_step=seen_per_step,
        train_step_s=step_s,
        train_step_per_row_s=step_s / seen_per_step,
        train_step_min_s=min(step_times),
        collate_s=collate_s,
        collate_share=collate_s / step_s,
        train_samples_per_s=seen_per_step / step_s,
        original_samples_per_s=size["batch"] / step_s,
        infer_b1_ms=1000 * statistics.median(b1_times),
        infer_b32_s=statistics.median(b32_times),
        infer_b32_samples_per_s=size["batch"] / statistics.median(b32_times),
        peak_rss_setup_mb=rss_setup,
        peak_rss_inference_mb=rss_inference,
        peak_rss_training_mb=peak_rss_mb(),
        **compile_times,
    )
    raw = dict(train_step_s=step_times, collate_s=collate_times, infer_b1_s=b1_times, infer_b32_s=b32_times)
    conditions = dict(load_average_before=load_before, load_average_after=os.getloadavg()[0],
                      training_cpu_per_wall=cpu_per_wall, threads=torch.get_num_threads(),
                      dropout_implementation=dropout_implementation, final_loss=float(loss_values[-1]))
    label = CONFIGS[key][0] + (", torch.compile" if compiled else "") + (", bf16 autocast" if bf16 else "")
    return dict(label=label, figures=figures, raw=raw, conditions=conditions)


def _run_worker(key: str, command: list[str], threads: int, marker: str = "") -> tuple[dict, dict]:
    """Run one measuring process with every thread pool capped at `threads`; its JSON result (the last stdout line
    starting with `marker`) and the conditions seen from outside (load average, the child's CPU per wall second)."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    load_before, wall_before = os.getloadavg()[0], time.perf_counter()
    cpu_before = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"worker for {key} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    cpu = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - cpu_before
    outside = dict(load_average_before=load_before, load_average_after=os.getloadavg()[0],
                   process_cpu_per_wall=cpu / (time.perf_counter() - wall_before))
    line = [line for line in done.stdout.splitlines() if line.startswith(marker)][-1]
    return json.loads(line[len(marker):]), outside


def measure_in_fresh_process(key: str, mode: str, size_name: str, threads: int, dropout_implementation: str) -> dict:
    """Run :func:`measure_config` in a new interpreter."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", key, "--worker-mode", mode,
               "--worker-size", size_name, "--threads", str(threads), "--dropout-implementation", dropout_implementation,
               "--clock", "cpu" if clock is CLOCKS["cpu"] else "wall"]
    return _run_worker(key, command, threads)[0]


def measure_official(key: str, source: Path, driver: Path, size: dict, repeats: dict, threads: int) -> dict:
    """The official model of `OFFICIAL[key]`, measured by the official-code driver in its own process (its training
    step: forward, criterion, weighted loss, backward, clip 0.1, AdamW on pre-collated batches), in our figures."""
    bf16 = key.endswith(BF16)
    label, variant = OFFICIAL[key.removesuffix(BF16)]
    boot = official_boot(cpu_clock=clock is CLOCKS["cpu"], bf16=bf16)
    command = [sys.executable, *boot, str(driver), "--src", str(source), "--child", variant, "--threads", str(threads),
               # the driver's generated windows need QVHighlights-length videos: 75 clips even in the dry run
               "--bsz", str(size["batch"]), "--clips", str(max(size["clips"], 75)), "--warmup", str(repeats["warmup"]),
               "--train-steps", str(repeats["train"]), "--latency-iters", str(repeats["infer_b1"]),
               "--throughput-iters", str(repeats["infer_b32"])]
    result, outside = _run_worker(key, command, threads, marker="RESULT ")
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


def generated_scoring_records(count: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Predictions and ground truth shaped like the QVHighlights val file (150 s, 75 clips, 10 windows)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    submission, ground_truth = [], []
    for qid in range(count):
        windows, clip_ids = [], set()
        for _ in range(int(rng.integers(1, 4))):
            start = int(rng.integers(0, 70))
            end = min(75, start + int(rng.integers(1, 30)))
            windows.append([2.0 * start, 2.0 * end])
            clip_ids.update(range(start, end))
        clip_ids = sorted(clip_ids)
        ground_truth.append(dict(qid=qid, query=f"query {qid}", vid=f"video{qid}", duration=150,
                                 relevant_windows=windows, relevant_clip_ids=clip_ids,
                                 saliency_scores=rng.integers(0, 5, (len(clip_ids), 3)).tolist()))
        starts = rng.integers(0, 74, 10)
        ends = np.minimum(75, starts + rng.integers(1, 40, 10))
        scores = np.sort(rng.random(10))[::-1]
        predictions = [[2.0 * s, 2.0 * e, round(float(p), 4)] for s, e, p in zip(starts, ends, scores)]
        submission.append(dict(qid=qid, query=f"query {qid}", vid=f"video{qid}", pred_relevant_windows=predictions,
                               pred_saliency_scores=rng.standard_normal(75).round(4).tolist()))
    return submission, ground_truth


def _leaves(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def measure_scoring(size: dict, repeats: dict, dry_run: bool) -> dict:
    """Vectorised `evaluate_submission` against the naive per-query loop, on the same records; both must agree."""
    from td_detr.metrics import evaluate_submission, read_jsonl

    predictions, reference = DATA / "reference_predictions" / "sample_val_preds.jsonl", DATA / "highlight_val_release.jsonl"
    if not dry_run and predictions.exists() and reference.exists():
        submission, ground_truth = read_jsonl(predictions), read_jsonl(reference)
        source = "QVHighlights val reference predictions"
    else:
        submission, ground_truth = generated_scoring_records(size["queries"])
        source = "generated"
    naive_evaluate = load_script("benchmark_metrics").naive_evaluate
    fast_times, fast = timed(lambda: evaluate_submission(submission, ground_truth), repeats["score"], repeats["warmup"])
    slow_times, slow = timed(lambda: naive_evaluate(submission, ground_truth), repeats["naive"], repeats["naive_warmup"])
    fast_flat = _leaves(fast)
    mismatches = [k for k, v in _leaves(slow).items() if fast_flat.get(k) != v]
    if mismatches:
        raise RuntimeError(f"vectorised and naive scores differ at {mismatches[:10]}")
    figures = dict(queries=len(submission), vectorised_s=statistics.median(fast_times),
                   naive_s=statistics.median(slow_times))
    return dict(source=source, figures=figures, raw=dict(vectorised_s=fast_times, naive_s=slow_times))


def machine_description(threads: int) -> dict:
    import torch
    import transformers

    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        ram_kib = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    return dict(nproc=os.cpu_count(), cpu=cpu, ram_gib=round(ram_kib / 2**20, 1), python=platform.python_version(),
                torch=torch.__version__, transformers=transformers.__version__, threads=threads)


def lookup(results: dict, path: str) -> float:
    """The number at a dotted path (``configs.<key>.<figure>`` or ``scoring.<figure>``)."""
    section, *rest = path.split(".")
    if section == "configs":
        return results["configs"][rest[0]]["figures"][rest[1]]
    return results["scoring"]["figures"][rest[0]]


def print_report(results: dict) -> None:
    settings, machine = results["settings"], results["machine"]
    print(f"{machine['cpu']}, {machine['nproc']} CPUs, {machine['ram_gib']} GiB; torch {machine['torch']}, "
          f"transformers {machine['transformers']}; {machine['threads']} threads; load average "
          f"{results['load_average_before'][0]:.2f} before, {results['load_average_after'][0]:.2f} after")
    print(f"mode {settings['mode']}: batch {settings['batch']} x {settings['clips']} clips x {settings['tokens']} tokens, "
          f"video {settings['video_dim']}-d, text {settings['text_dim']}-d; medians of "
          + ", ".join(f"{n} {k}" for k, n in settings["repeats"].items() if "warmup" not in k)
          + f" (after {settings['repeats']['warmup']} warm-up)"
          + (f"; each config's fastest of {settings['rounds']} rounds" if settings["rounds"] > 1 else ""))
    if settings.get("memory", "").startswith("one process"):
        print("peak RSS: all configs in one process, so each figure includes the configs measured before it")
    header = (f"{'config':36s} {'params':>8s} {'seen':>5s} {'step s':>7s} {'best':>6s} {'collate':>8s} {'share':>6s} {'seen/s':>7s} "
              f"{'orig/s':>7s} {'b=1 ms':>7s} {'b=32/s':>7s} {'RSS inf':>8s} {'RSS train':>9s}")
    print(header)
    for result in results["configs"].values():
        f = result["figures"]
        collate = f"{f['collate_s']:8.3f} {100 * f['collate_share']:5.1f}%" if "collate_s" in f else f"{'-':>8s} {'-':>6s}"
        print(f"{result['label']:36s} {f['parameters'] / 1e6:7.2f}M {f['samples_seen_per_step']:5.0f} "
              f"{f['train_step_s']:7.3f} {f['train_step_min_s']:6.2f} {collate} "
              f"{f['train_samples_per_s']:7.1f} {f['original_samples_per_s']:7.1f} {f['infer_b1_ms']:7.1f} "
              f"{f['infer_b32_samples_per_s']:7.1f} {f['peak_rss_inference_mb']:6.0f}MB {f['peak_rss_training_mb']:7.0f}MB")
    if settings.get("clock") == "cpu":
        print("times are CPU seconds of each measuring process (--clock cpu), not wall seconds")
    print(f"our configs: dropout_implementation={settings['dropout_implementation']}; official step = the official "
          "train loop's (pre-collated batches), ours includes collate")
    for key, result in results["configs"].items():
        if "compile_training_s" in result["figures"]:
            print(f"{key}: compile {result['figures']['compile_training_s']:.1f} s (first training step), "
                  f"{result['figures']['compile_inference_s']:.1f} s (first inferences)")
    print("load average / CPU per wall second: " + ", ".join(
        f"{key} {r['conditions']['load_average_before']:.2f}->{r['conditions']['load_average_after']:.2f} / "
        f"{r['conditions'].get('training_cpu_per_wall', r['conditions'].get('process_cpu_per_wall', 0)):.2f}"
        for key, r in results["configs"].items()))
    if settings["rounds"] > 1:
        print("train step medians per round: " + ", ".join(
            f"{key} " + "/".join(f"{t:.2f}" for t in r["conditions"]["round_train_step_s"])
            for key, r in results["configs"].items()))
    scoring = results["scoring"]["figures"]
    print(f"scoring {scoring['queries']} queries ({results['scoring']['source']}): vectorised {scoring['vectorised_s']:.3f} s, "
          f"naive loop {scoring['naive_s']:.3f} s (identical metrics)")
    for warning in results["warnings"]:
        print(f"WARNING {warning}")
    print("ratios (all from this run):")
    for ratio in results["ratios"]:
        print(f"  {ratio['name']:80s} {ratio['value']:7.3f}")


def run_benchmark(mode: str, threads: int, in_process: bool, rounds: int = 1, official_src: Path | None = None,
                  official_driver: Path | None = None, compile_too: bool = False,
                  dropout_implementation: str = "fast_cpu", configs: list[str] | None = None,
                  bf16: bool = False) -> dict:
    """Every figure and ratio of one benchmark run (see the module docstring), as a JSON-ready dict."""
    import torch

    torch.set_num_threads(threads)
    size_name = "tiny" if mode == "dry" else "real"
    size, repeats = SIZES[size_name], REPEATS[mode]
    results = dict(
        machine=machine_description(threads),
        settings=dict(mode=mode, batch=size["batch"], clips=size["clips"], tokens=size["tokens"],
                      video_dim=sum(size["video_dims"]), text_dim=size["text_dim"], repeats=repeats, rounds=rounds,
                      memory="fresh process per config" if not in_process else "one process (peaks cumulative)",
                      dropout_implementation=dropout_implementation, official_src=str(official_src or ""), bf16=bf16,
                      clock="cpu" if clock is CLOCKS["cpu"] else "wall"),
        load_average_before=list(os.getloadavg()),
        configs={},
    )
    selected = list(configs or CONFIGS)
    ours = selected + ([key + COMPILED for key in selected] if compile_too else [])
    ours += [key + BF16 for key in selected] if bf16 else []
    officials = (list(OFFICIAL) + ([key + BF16 for key in OFFICIAL] if bf16 else [])) if official_src else []
    measured = {key: [] for key in ours + officials}
    for _ in range(rounds):  # configs alternate, so a burst of outside load hits one round of one config
        for key in measured:
            if key.removesuffix(BF16) in OFFICIAL:
                result = measure_official(key, official_src, official_driver, size, repeats, threads)
            elif in_process:
                result = measure_config(key, size, repeats, threads, dropout_implementation)
            else:
                result = measure_in_fresh_process(key, mode, size_name, threads, dropout_implementation)
            measured[key].append(result)
    for key, runs in measured.items():
        # Other work on the machine only ever slows a round down: keep each config's fastest round whole.
        chosen = min(range(rounds), key=lambda i: runs[i]["figures"]["train_step_s"])
        results["configs"][key] = runs[chosen]
        runs[chosen]["conditions"].update(
            chosen_round=chosen, round_train_step_s=[run["figures"]["train_step_s"] for run in runs],
            round_infer_b1_ms=[run["figures"]["infer_b1_ms"] for run in runs],
        )
    results["scoring"] = measure_scoring(size, repeats, dry_run=mode == "dry")
    results["load_average_after"] = list(os.getloadavg())
    def measured_here(path: str) -> bool:
        return not path.startswith("configs.") or path.split(".")[1] in results["configs"]

    results["ratios"] = [
        dict(name=name, numerator=num, denominator=den, value=lookup(results, num) / lookup(results, den))
        for name, num, den in RATIOS + (OFFICIAL_RATIOS if officials else []) + (BF16_RATIOS if bf16 else [])
        if measured_here(num) and measured_here(den)
    ]
    for key in selected if compile_too else []:
        results["ratios"].append(dict(
            name=f"train step {key}: torch.compile / eager", numerator=f"configs.{key}{COMPILED}.train_step_s",
            denominator=f"configs.{key}.train_step_s",
            value=lookup(results, f"configs.{key}{COMPILED}.train_step_s") / lookup(results, f"configs.{key}.train_step_s")))
    results["warnings"] = contention_warnings(results)
    return results


def contention_warnings(results: dict) -> list[str]:
    """Signs that other work shared the cores. With 2 threads on 2 busy cores every parallel op waits for a
    descheduled thread (ms each), which can slow a step tens of times; such figures are not the code's."""
    threads, warnings = results["machine"]["threads"], []
    for key, result in results["configs"].items():
        conditions = result["conditions"]
        cpu_per_wall = conditions.get("training_cpu_per_wall", conditions.get("process_cpu_per_wall"))
        if cpu_per_wall < 0.8 * min(threads, results["machine"]["nproc"]):
            warnings.append(f"{key}: got {cpu_per_wall:.2f} CPU s per s with "
                            f"{threads} threads (load {conditions['load_average_before']:.2f}): cores were shared")
    return warnings


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(arg == "--device" or arg.startswith("--device=") for arg in argv):  # GPU harness: scripts/benchmark_gpu.py
        return load_script("benchmark_gpu").main(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default 2; 1 for --dry-run, whose tiny matrices "
                             "only pay thread hand-off on a busy machine)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats, all configs in this process (54 s measured on an idle 2-core machine, several times "
                             "that when the cores are shared; peak RSS then cumulative)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, 1 repeat, one process (~25 s on 2 shared cores)")
    parser.add_argument("--fresh-processes", action="store_true",
                        help="with --quick: still measure every config in its own process (peak RSS per config)")
    parser.add_argument("--in-process", action="store_true",
                        help="measure every config in this process (faster start; peak RSS then cumulative)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every config this many times, alternating, and keep each one's fastest round "
                             "(a shared machine's load only slows rounds down)")
    parser.add_argument("--official-src", type=Path,
                        help="folder holding the official QD-DETR qd_detr/ and utils/ (../shared/reference/qd-detr): "
                             "also measure the official 2/2/2 and 4/4/4 models in this run and give ours / official")
    parser.add_argument("--official-driver", type=Path,
                        help="the script that times the official code (default: qd_detr_speed.py beside --official-src)")
    parser.add_argument("--compile", action="store_true",
                        help="also measure every config of ours under torch.compile (compile time reported apart)")
    parser.add_argument("--dropout-implementation", choices=("torch", "fast_cpu"), default="fast_cpu",
                        help="TDDetrConfig.dropout_implementation of our configs (default fast_cpu)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="time in wall seconds (default) or in CPU seconds of the measuring process (ours and the "
                             "official code's alike; steadier on a shared machine, meaningful with --threads 1)")
    parser.add_argument("--configs", type=lambda text: text.split(","), default=None,
                        help=f"comma list of our configs to measure (default all: {','.join(CONFIGS)})")
    parser.add_argument("--bf16", action="store_true",
                        help="also measure every config of ours, and the official models with --official-src, with "
                             "the forward under torch.autocast('cpu', bfloat16) (fast on CPUs with AVX-512 BF16 / AMX)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--worker", choices=[key + suffix for key in CONFIGS for suffix in ("", COMPILED, BF16)],
                        help=argparse.SUPPRESS)
    parser.add_argument("--worker-mode", choices=list(REPEATS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-size", choices=list(SIZES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    unknown = sorted(set(args.configs or []) - set(CONFIGS))
    if unknown:
        parser.error(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")

    if args.worker:  # child of measure_in_fresh_process: one config, result as the last stdout line
        result = measure_config(args.worker, SIZES[args.worker_size], REPEATS[args.worker_mode], args.threads or 2,
                                args.dropout_implementation)
        print(json.dumps(result))
        return 0

    mode = "dry" if args.dry_run else "quick" if args.quick else "full"
    threads = args.threads or (1 if args.dry_run else 2)
    # --quick measures in one process (no interpreter start per config); peak RSS then cumulative.
    in_process = args.in_process or args.dry_run or (args.quick and not args.fresh_processes)
    driver = args.official_driver
    if args.official_src is not None:
        driver = driver or args.official_src.resolve().parent / "qd_detr_speed.py"
        missing = [str(p) for p in (args.official_src / "qd_detr" / "model.py", driver) if not p.is_file()]
        if missing:
            parser.error(f"--official-src / --official-driver: not found: {', '.join(missing)}")
    results = run_benchmark(mode, threads, in_process=in_process, rounds=args.rounds, official_src=args.official_src,
                            official_driver=driver, compile_too=args.compile,
                            dropout_implementation=args.dropout_implementation, configs=args.configs, bf16=args.bf16)
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
