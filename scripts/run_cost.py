"""What a paper-table QVHighlights run costs: time ``steps`` training steps of ``TDDetrTrainer`` (the ``td-detr train``
path: the QVHighlights preset, its per-epoch evaluation, checkpoint and best-model bookkeeping) on generated features
of QVHighlights size, and extrapolate to the preset's whole schedule.

Used by ``scripts/benchmark_gpu.py --run-cost`` (which times the official code the same way with
``scripts/official_qd_detr_gpu.py --mode run-cost``). The training split's videos are resident on the device
(``--features-on-device``: one ``[N, 75, 2816]`` tensor, ~6 GB for N = 7,218), generated there; the validation split
(1,550 queries) goes through the regular video table and evaluation collator, and is scored with the official metrics.
"""

from __future__ import annotations

import math
import tempfile
import time

import numpy as np

from td_detr.registry import DATA_SETS


def planned_schedule(train_queries: int) -> dict:
    """Steps and evaluations of the QVHighlights preset for ``train_queries`` queries (registry: 200 epochs of
    ceil(2N / 32) steps, evaluation every epoch; 90,400 steps for N = 7,218)."""
    preset = DATA_SETS["qvhighlights"].training
    per_epoch = math.ceil(preset.passes_per_epoch * train_queries / preset.batch_size)
    return dict(epochs=preset.epochs, steps_per_epoch=per_epoch, total_steps=preset.epochs * per_epoch,
                evaluations=preset.epochs, batch_size=preset.batch_size)


def extrapolate(measured: dict, schedule: dict) -> dict:
    """Minutes of the whole schedule from a timed part: the first step (compilation, warm-up) once, the other
    training steps at their measured mean, every evaluation at the measured mean evaluation."""
    steps, evaluations = measured["steps"], max(measured["evaluations"], 1)
    train_s = measured["total_s"] - measured["eval_s"] - measured["first_step_s"]
    per_step = train_s / max(steps - 1, 1)
    per_eval = measured["eval_s"] / evaluations
    total = measured["first_step_s"] + (schedule["total_steps"] - 1) * per_step + schedule["evaluations"] * per_eval
    return dict(train_step_s=per_step, evaluation_s=per_eval, run_minutes=total / 60,
                training_minutes=(schedule["total_steps"] - 1) * per_step / 60,
                evaluation_minutes=schedule["evaluations"] * per_eval / 60)


def _unit(x, dims):
    """Each feature type (consecutive blocks of ``dims`` columns) L2-normalised, as the processor gives them."""
    import torch

    parts = torch.split(x, list(dims), dim=-1)
    return torch.cat([p / p.norm(dim=-1, keepdim=True).clamp_min(1e-12) for p in parts], dim=-1)


def _annotation(rng: np.random.Generator, clips: int) -> dict:
    windows, clip_ids = [], set()
    for _ in range(int(rng.integers(1, 4))):
        start = int(rng.integers(0, clips - 6))
        end = start + int(rng.integers(1, 6))
        windows.append([2.0 * start, 2.0 * end])
        clip_ids.update(range(start, end))
    clip_ids = sorted(clip_ids)
    return dict(duration=2.0 * clips, relevant_windows=windows, relevant_clip_ids=clip_ids,
                saliency_scores=rng.integers(0, 5, (len(clip_ids), 3)).tolist())


def query_table(count: int, size: dict, seed: int, vid_of, first_qid: int = 0):
    """``count`` annotated query rows (a ``datasets.Dataset`` with Array2D text features)."""
    import datasets

    rng = np.random.default_rng(seed)
    rows = {key: [] for key in ("qid", "query", "vid", "duration", "relevant_windows", "relevant_clip_ids",
                                "saliency_scores", "text_features")}
    for index in range(count):
        qid = first_qid + index
        annotation = _annotation(rng, size["clips"])
        text = rng.standard_normal((size["tokens"], size["text_dim"]), dtype=np.float32)
        values = dict(qid=qid, query=f"query {qid}", vid=vid_of(index), text_features=text, **annotation)
        for key, value in values.items():
            rows[key].append(value)
    features = datasets.Features({
        "qid": datasets.Value("int64"), "query": datasets.Value("string"), "vid": datasets.Value("string"),
        "duration": datasets.Value("float64"),
        "relevant_windows": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
        "relevant_clip_ids": datasets.Sequence(datasets.Value("int64")),
        "saliency_scores": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
        "text_features": datasets.Array2D(shape=(None, size["text_dim"]), dtype="float32"),
    })
    return datasets.Dataset.from_dict(rows, features=features)


def validation_split(count: int, size: dict, pool: int, seed: int):
    """Validation queries over a pool of generated videos, read through the video table as ``td-detr train`` reads
    them."""
    import datasets
    import torch

    from td_detr.data.video_table import VideoJoin

    generator = torch.Generator().manual_seed(seed)
    dims = size["video_dims"]
    videos = [_unit(torch.randn(size["clips"], sum(dims), generator=generator), dims).numpy() for _ in range(pool)]
    table = datasets.Dataset.from_dict(
        {"vid": [f"val{k}" for k in range(pool)], "video_features": videos},
        features=datasets.Features({"vid": datasets.Value("string"),
                                    "video_features": datasets.Array2D(shape=(None, sum(dims)), dtype="float32")}))
    queries = query_table(count, size, seed, lambda index: f"val{index % pool}", first_qid=10**7)
    return queries.with_transform(VideoJoin(table, None, "torch"))


def resident_training_videos(count: int, size: dict, device, seed: int):
    """One generated video per training query, made on the device (no 6 GB host copy)."""
    import torch

    from td_detr.data.resident import ResidentVideoFeatures

    generator = torch.Generator(device=device).manual_seed(seed)
    features = torch.randn(count, size["clips"], sum(size["video_dims"]), generator=generator, device=device)
    features = _unit(features, size["video_dims"])
    return ResidentVideoFeatures(features, np.full(count, size["clips"]), [f"train{k}" for k in range(count)])


def our_run_cost(config, size: dict, device: str, steps: int, train_queries: int, val_queries: int, bf16: bool,
                 compile: bool, seed: int = 2018, pool: int = 256) -> dict:
    """Time ``steps`` steps of ``TDDetrTrainer`` with the QVHighlights preset (module docstring)."""
    import torch
    from transformers import PrinterCallback, TrainerCallback, set_seed
    from transformers.utils import logging as transformers_logging

    from td_detr import TDDetrForMomentRetrieval
    from td_detr.data.collator import DataCollatorForMomentRetrieval
    from td_detr.devices import compile_model
    from td_detr.training import TDDetrTrainer, preset_for, training_arguments

    preset = preset_for("qvhighlights")
    set_seed(seed)
    transformers_logging.disable_progress_bar()  # the per-checkpoint "Writing model shards" bar
    clock = time.perf_counter
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    store = resident_training_videos(train_queries, size, torch.device(device), seed)
    train = query_table(train_queries, size, seed + 1, lambda index: f"train{index}")
    train = train.with_format("numpy", columns=["text_features"], output_all_columns=True)
    val = validation_split(val_queries, size, min(pool, val_queries), seed + 2)
    model = TDDetrForMomentRetrieval(config)
    if compile:  # as `td-detr train --compile`
        compile_model(model)
    train_collator = DataCollatorForMomentRetrieval.from_config(config, training=True, seed=seed, resident=store)
    eval_collator = DataCollatorForMomentRetrieval.from_config(config, training=False, seed=seed)
    timings = dict(first_step_s=None, eval_s=0.0, evaluations=0)

    class FirstStep(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            sync()
            timings["start"] = clock()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                sync()
                timings["first_step_s"] = clock() - timings["start"]

    with tempfile.TemporaryDirectory() as output:
        arguments = training_arguments(
            output, preset, max_steps=steps, use_cpu=device == "cpu", bf16=bf16,
            dataloader_pin_memory=False, disable_tqdm=True, save_total_limit=1)
        trainer = TDDetrTrainer(
            model=model, args=arguments, train_dataset=train, eval_dataset=val, data_collator=train_collator,
            eval_data_collator=eval_collator, callbacks=[FirstStep()], lr_drop_epochs=preset.lr_drop_epochs,
            lr_gamma=preset.lr_gamma, passes_per_epoch=preset.passes_per_epoch,
            weight_decay_scope=preset.weight_decay_scope)
        evaluate = trainer.evaluate

        def timed_evaluate(*args, **kwargs):
            sync()
            start = clock()
            result = evaluate(*args, **kwargs)
            sync()
            timings["eval_s"] += clock() - start
            timings["evaluations"] += 1
            return result

        trainer.evaluate = timed_evaluate
        trainer.pop_callback(PrinterCallback)  # no per-epoch dicts in the log
        trainer.train()
        sync()
        total = clock() - timings.pop("start")
        done = trainer.state.global_step
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
    return dict(steps=done, total_s=total, steps_per_epoch=trainer.planned_schedule()["steps_per_epoch"],
                resident_features_mb=store.features.numel() * 4 / 2**20, peak_memory_mb=peak, **timings)
