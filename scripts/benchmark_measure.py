"""The measuring loops of `scripts/benchmark.py`: the clock, one config of ours measured in this process
(inference, training step, peak RSS) or in a fresh one, and the scoring of the metrics next to the naive loop."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmark_configs import BF16, COMPILED, CONFIGS, build_config, size_rows

SCRIPTS = Path(__file__).resolve().parent
DATA = SCRIPTS.parent / ".." / "shared" / "data" / "qvhighlights"

# `--clock cpu`: every timing is CPU seconds of the measuring process (`time.process_time`), ours and the official
# code's alike. On a machine shared with other work a process gets a varying share of the cores, which moves wall
# times by tens of percent between processes; with 1 thread its CPU time per step barely moves.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def use_clock(name: str) -> None:
    """Time every later measurement with `CLOCKS[name]` (`--clock`)."""
    global clock
    clock = CLOCKS[name]


def clock_name() -> str:
    return "cpu" if clock is CLOCKS["cpu"] else "wall"


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
    rows = size_rows(size)
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


def run_worker(key: str, command: list[str], threads: int, marker: str = "") -> tuple[dict, dict]:
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
    command = [sys.executable, str(SCRIPTS / "benchmark.py"), "--worker", key, "--worker-mode", mode,
               "--worker-size", size_name, "--threads", str(threads), "--dropout-implementation", dropout_implementation,
               "--clock", clock_name()]
    return run_worker(key, command, threads)[0]


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
    from benchmark_metrics import naive_evaluate

    from td_detr.metrics import evaluate_submission, read_jsonl

    predictions, reference = DATA / "reference_predictions" / "sample_val_preds.jsonl", DATA / "highlight_val_release.jsonl"
    if not dry_run and predictions.exists() and reference.exists():
        submission, ground_truth = read_jsonl(predictions), read_jsonl(reference)
        source = "QVHighlights val reference predictions"
    else:
        submission, ground_truth = generated_scoring_records(size["queries"])
        source = "generated"
    fast_times, fast = timed(lambda: evaluate_submission(submission, ground_truth), repeats["score"], repeats["warmup"])
    slow_times, slow = timed(lambda: naive_evaluate(submission, ground_truth), repeats["naive"], repeats["naive_warmup"])
    fast_flat = _leaves(fast)
    mismatches = [k for k, v in _leaves(slow).items() if fast_flat.get(k) != v]
    if mismatches:
        raise RuntimeError(f"vectorised and naive scores differ at {mismatches[:10]}")
    figures = dict(queries=len(submission), vectorised_s=statistics.median(fast_times),
                   naive_s=statistics.median(slow_times))
    return dict(source=source, figures=figures, raw=dict(vectorised_s=fast_times, naive_s=slow_times))
