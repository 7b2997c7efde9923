"""`td-detr train`: train TD-DETR (default: on the embedded synthetic data set, a few CPU minutes), evaluate, print
the metrics table and save the model (safetensors + config + processor + model card + metrics.json +
predictions.jsonl). The processor (`preprocessor_config.json`: clip length, feature types and widths, caps) is saved
with the model and with every checkpoint, so evaluation and prediction need no data flags repeated."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..devices import compile_model
from ..errors import TDDetrInputError
from .data_options import add_data_arguments, dataset_name, resolve_data
from .device_options import (add_device_arguments, device_training_arguments, execution_record, resident_training_split,
                             resolve_device)
from .flag_checks import check_positive_flags

DEFAULT_OUTPUT_ROOT = "td-detr-runs"
# Optimisation settings that are part of what a run is (resuming with other values would mix two runs).
FINGERPRINT_TRAINING_ARGS = ("learning_rate", "weight_decay", "per_device_train_batch_size",
                             "gradient_accumulation_steps", "max_grad_norm", "lr_scheduler_type")
# Settings that change the trajectory too, recorded only when on, so runs started before they existed keep their
# fingerprints: mixed precision (TrainingArguments) and row chunks (the negatives' dropout is drawn apart from their
# rows; a TDDetrTrainer argument, from the command line).
FINGERPRINT_PRECISION_ARGS = ("bf16", "fp16")
FINGERPRINT_TRAINER_FLAGS = ("row_chunk_size",)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model (no arguments: the embedded synthetic demo)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(parser)
    group = parser.add_argument_group("model and optimisation")
    group.add_argument("--output-dir", help=f"where to save (default: {DEFAULT_OUTPUT_ROOT}/<data set>)")
    group.add_argument("--config", help="a hub config name (e.g. td-detr-qvh), a config.json, or a saved model to fine-tune")
    group.add_argument("--epochs", type=float,
                       help="number of epochs (default: the data set's preset). One epoch is the official TD-DETR "
                            "epoch: two passes over the training queries for qvhighlights, charades_sta and custom data "
                            "(the official loader walks 2N entries: N synthetic + N original), one for the synthetic "
                            "demo; e.g. qvhighlights: 200 epochs of ceil(2N/32) steps")
    group.add_argument("--until-converged", action="store_true",
                       help="stop once the selection metric has not improved for a fifth of the run (after at "
                            "least --min-evaluations evaluations); --epochs / --max-steps become the cap "
                            "(td_detr.convergence)")
    group.add_argument("--min-evaluations", type=int,
                       help="with --until-converged: never stop before this many evaluations (default: "
                            "td_detr.convergence.MIN_EVALUATIONS; e.g. a few past the LR drop)")
    group.add_argument("--min-improvement", type=float, metavar="POINTS",
                       help="with --until-converged: a score counts as an improvement only when it beats the best so "
                            "far by more than this, in the selection metric's units (e.g. 0.5 mAP; default 0)")
    group.add_argument("--lr-drop", type=int, metavar="EPOCHS",
                       help="multiply the learning rate by 0.1 every EPOCHS epochs (default: preset; qvhighlights 80, "
                            "charades_sta none)")
    group.add_argument("--max-steps", type=int, help="stop after this many optimiser steps (overrides --epochs)")
    group.add_argument("--batch-size", type=int, help="training batch size before synthesis (default: preset)")
    group.add_argument("--lr", type=float, help="learning rate (default: preset)")
    group.add_argument("--seed", type=int, help="seed of model init, shuffling and synthesis (default: preset)")
    group.add_argument("--official", action="store_true",
                       help="reproduce the official TD-DETR code instead of the paper where they differ: fixed-count "
                            "sampling, top-50 similarity, no length cap, dynamics with position, originals kept "
                            "(1.5B rows), official T2V mask, windows decoded with the annotation duration and clamped to "
                            "[0, 150] s, 2 passes per epoch, weight decay on every parameter (docs/RESULTS.md, 'Paper versus official code')")
    group.add_argument("--weight-decay-scope", choices=("all", "weights"),
                       help="AdamW decay on every parameter (all: official, the default) or only on weights (the "
                            "Trainer's default: biases and LayerNorm exempt)")
    group.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                       help="resume the run in --output-dir from its latest complete checkpoint (or from CHECKPOINT); "
                            "only a run with the same config, data and seed")
    group.add_argument("--overwrite", action="store_true",
                       help="replace the run already in --output-dir (its model, metrics and checkpoints)")
    group.add_argument("--row-chunk-size", type=int, metavar="ROWS",
                       help="run each training batch's forward and backward in chunks of ROWS rows: the same gradient "
                            "at a chunk's activation memory (TD-DETR's synthesized batch has 2x the rows; 16 brings "
                            "its peak below QD-DETR's at the same depth, at about the same step time; "
                            "td_detr.row_chunks, docs/PERFORMANCE.md)")
    group.add_argument("--save-steps", type=int, help="save a resumable checkpoint every N steps (default: every epoch)")
    group.add_argument("--report-to", choices=("none", "tensorboard"), default="none",
                       help="also log to TensorBoard (under OUTPUT_DIR/checkpoints/runs; needs tensorboardX)")
    group.add_argument("--threads", type=int,
                       help="torch CPU threads (default: 1 for the small synthetic demo model, whose matrices are too "
                            "small to gain from more and which slows down badly when another process shares the cores; "
                            "torch's default otherwise)")
    add_device_arguments(parser)
    ablation = parser.add_argument_group("ablations (paper Tables 3, S1, S2, S4)")
    ablation.add_argument("--no-synthesis", action="store_true", help="train without the video synthesizer")
    ablation.add_argument("--no-dynamics", action="store_true", help="drop the dynamics enhancement (QD-DETR layers)")
    ablation.add_argument("--pairing", choices=("similarity", "random"), help="partner choice of the synthesizer")
    ablation.add_argument("--alpha", type=float, help="α: share of the video's own context kept by the synthesizer")
    ablation.add_argument("--beta", type=float, help="β: weight of the video tokens against the dynamics (Eq. 6)")
    parser.set_defaults(func=run)


def apply_ablations(config, args) -> None:
    if args.no_dynamics:
        config.use_dynamics = False
    if args.no_synthesis:
        config.synthesis_pairing = "none"
    elif args.pairing:
        config.synthesis_pairing = args.pairing
    if args.alpha is not None:
        config.synthesis_alpha = args.alpha
    if args.beta is not None:
        config.dynamics_beta = args.beta
    try:
        config.validate_choices()
    except ValueError as error:
        raise TDDetrInputError(str(error)) from None


def run(args) -> int:
    from ..run_folder import RunFolder  # imports transformers' Trainer (torch): not at module level, for --help

    # Flags first: a bad flag is reported as such even when --output-dir holds another run.
    check_positive_flags(args, "epochs", "max_steps", "batch_size", "lr", "save_steps", "threads", "max_samples",
                         "row_chunk_size",
                         "min_evaluations")
    if args.min_improvement is not None and not args.min_improvement >= 0:
        raise TDDetrInputError(f"--min-improvement {args.min_improvement}: give a number of points >= 0")
    if args.lr_drop is not None and args.lr_drop < 1:
        raise TDDetrInputError(f"--lr-drop {args.lr_drop}: give a number of epochs >= 1")
    args.resolved_device = resolve_device(args)
    if args.report_to == "tensorboard":
        from transformers.integrations import is_tensorboard_available

        if not is_tensorboard_available():
            raise TDDetrInputError("--report-to tensorboard needs tensorboardX: pip install 'td-detr[tensorboard]'")
    output_dir = Path(args.output_dir or os.path.join(DEFAULT_OUTPUT_ROOT, dataset_name(args)))
    folder = RunFolder(output_dir)
    is_main_process = int(os.environ.get("RANK", "0")) == 0  # torchrun: rank 0 guards the folder for all ranks
    if is_main_process:
        folder.claim(resume=bool(args.resume), overwrite=args.overwrite)
    try:
        return _train(args, output_dir, folder, is_main_process)
    finally:
        folder.release()


def _train(args, output_dir: Path, folder, is_main_process: bool) -> int:
    import torch
    from transformers import set_seed

    from ..configuration_td_detr import TDDetrConfig
    from ..convergence import convergence_report
    from ..data.collator import DataCollatorForMomentRetrieval
    from ..metrics import format_metrics_table
    from ..modeling_td_detr import TDDetrForMomentRetrieval
    from ..processing_td_detr import OFFICIAL_PROCESSING, TDDetrProcessor
    from ..run_folder import CompleteCheckpointCallback, run_fingerprint
    from ..training import TDDetrTrainer, custom_tier, model_config_for, preset_for, training_arguments
    from ..training_report import TimeEstimateCallback
    from .model_loading import load_config_or_model

    base_config, pretrained = load_config_or_model(args.config) if args.config else (None, None)
    data = resolve_data(args, need_train=True)
    threads = args.threads or (1 if data.name == "synthetic" and not args.config else None)
    if threads:
        torch.set_num_threads(threads)
    num_queries = len(data.splits["train"])
    tier = custom_tier(data.name, num_queries)
    preset = preset_for(data.name, official=args.official, num_queries=num_queries)
    seed = preset.seed if args.seed is None else args.seed

    config = model_config_for(data.name, data.settings, base=base_config, pretrained=pretrained is not None,
                              num_queries=num_queries)
    if args.official:
        config = TDDetrConfig.official_td_detr(base=config)
    apply_ablations(config, args)

    set_seed(seed)
    if pretrained is not None:
        model = TDDetrForMomentRetrieval.from_pretrained(pretrained, config=config)
    else:
        model = TDDetrForMomentRetrieval(config)
    if args.compile:
        compile_model(model)
    feature_types = data.settings.processor().video_feature_types
    official_processing = OFFICIAL_PROCESSING if args.official else {}
    processor = TDDetrProcessor.from_model_config(
        config, video_feature_types=feature_types, video_feature_dims=list(data.settings.video_feature_dims),
        **official_processing)
    eval_collator = DataCollatorForMomentRetrieval.from_config(config, training=False, seed=seed, processor=processor)

    overrides = dict(seed=seed, data_seed=seed, report_to=args.report_to,
                     **device_training_arguments(args, args.resolved_device))
    if args.epochs is not None:
        overrides["num_train_epochs"] = args.epochs
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.batch_size is not None:
        overrides["per_device_train_batch_size"] = args.batch_size
    if args.lr is not None:
        overrides["learning_rate"] = args.lr
    if args.save_steps is not None:
        overrides.update(save_strategy="steps", save_steps=args.save_steps, eval_strategy="steps", eval_steps=args.save_steps,
                         logging_strategy="steps", logging_steps=args.save_steps)
    if data.eval_split is None:
        overrides.update(eval_strategy="no", load_best_model_at_end=False)
    training_args = training_arguments(str(folder.checkpoints), preset, **overrides)
    resident = None
    if args.features_on_device:
        resident, data.splits["train"] = resident_training_split(data.splits["train"], training_args.device)
    train_collator = DataCollatorForMomentRetrieval.from_config(config, training=True, seed=seed, processor=processor,
                                                                resident=resident)
    schedule = dict(
        lr_drop_epochs=preset.lr_drop_epochs if args.lr_drop is None else args.lr_drop,
        lr_gamma=preset.lr_gamma,
        passes_per_epoch=preset.passes_per_epoch,
        weight_decay_scope=args.weight_decay_scope or preset.weight_decay_scope,
    )
    settings = {key: getattr(training_args, key) for key in FINGERPRINT_TRAINING_ARGS}
    when_on = {**{key: getattr(training_args, key) for key in FINGERPRINT_PRECISION_ARGS},
               **{key: getattr(args, key) for key in FINGERPRINT_TRAINER_FLAGS}}
    settings.update({key: value for key, value in when_on.items() if value})
    run = run_fingerprint(config, data, seed, {**settings, **schedule, "official": args.official},
                          execution=execution_record(args, args.resolved_device))
    if is_main_process:
        folder.start(run, resume=bool(args.resume))
    with training_args.main_process_first(desc="resume checkpoint"):
        resume = folder.resume_checkpoint(args.resume, run) if args.resume else None

    trainer = TDDetrTrainer(
        model=model,
        args=training_args,
        train_dataset=data.splits["train"],
        eval_dataset=data.splits[data.eval_split] if data.eval_split else None,
        data_collator=train_collator,
        eval_data_collator=eval_collator,
        processing_class=processor,
        row_chunk_size=args.row_chunk_size,
        callbacks=[CompleteCheckpointCallback(run), TimeEstimateCallback(),
                   *([stop_when_converged(args)] if args.until_converged else [])],
        **schedule,
    )
    report = use_epoch_report(trainer, preset.best_metric, data.eval_split)
    if trainer.is_world_process_zero():
        world = f", world size {training_args.world_size}" if training_args.world_size > 1 else ""
        plan = trainer.planned_schedule()
        drops = ", ".join(map(str, plan["lr_drop_steps"])) or "none"
        print(preset_line(data.name, tier, num_queries, args))
        epochs = plan["total_steps"] / plan["steps_per_epoch"]
        print(f"training {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters on {data.name} "
              f"({num_queries} queries × {preset.passes_per_epoch} passes per epoch{world}): {epochs:g} epochs, "
              f"{plan['total_steps']} optimizer steps ({plan['steps_per_epoch']} per epoch), LR drops at steps {drops}; "
              f"output: {output_dir}")
        print(data_locations(data, args.cache_dir))
        if resume:
            print(f"resuming from {resume}")
    try:
        trainer.train(resume_from_checkpoint=resume)
    except KeyboardInterrupt:
        args.interrupt_hint = _resume_hint(folder.checkpoints)
        raise

    metrics = held_out = None
    predictions = []
    if data.eval_split:
        trainer.evaluate()
        metrics, predictions = trainer.last_metrics, trainer.last_predictions
    held_out_split = held_out_split_of(data)
    if held_out_split:  # scored once, after the epoch was chosen on the evaluation split
        trainer.evaluate(eval_dataset=data.splits[held_out_split], metric_key_prefix="test")
        held_out = trainer.last_metrics
    if trainer.is_world_process_zero():
        from ..training_report import final_table

        if metrics is not None:
            print(f"\nmetrics on {data.name} / {data.eval_split} ({len(predictions)} queries):")
            print(format_metrics_table(metrics))
            print()
            print(final_table(report.best if trainer.args.load_best_model_at_end else None, data.eval_split,
                              metrics["brief"], held_out_split, held_out["brief"] if held_out else None))
            if args.until_converged:
                print(convergence_line(convergence_report(trainer.state.log_history, preset.best_metric),
                                       trainer.state.global_step >= trainer.state.max_steps))
        save_trained_model(trainer.model, processor, output_dir, metrics, predictions, data, args)
        if held_out is not None:
            (output_dir / "test_metrics.json").write_text(json.dumps({"split": held_out_split, **held_out}, indent=2))
        print(f"\nsaved to {output_dir}")
    return 0


def stop_when_converged(args):
    from ..convergence import StopWhenConvergedCallback

    rule = {"min_evaluations": args.min_evaluations, "min_improvement": args.min_improvement}
    return StopWhenConvergedCallback(**{key: value for key, value in rule.items() if value is not None})


def convergence_line(report: dict, reached_cap: bool) -> str:
    if not report:
        return "convergence: no evaluation during training"
    end = "reached the cap before converging" if reached_cap else "stopped: no improvement for a fifth of the run"
    return (f"convergence: best epoch {report['best_epoch']:g} of {report['epochs_run']:g} "
            f"({report['evaluations']} evaluations); {end}")


def preset_line(name: str, tier, num_queries: int, args) -> str:
    """Which preset the run uses and which flags replaced parts of it."""
    if tier is None:
        line = f"preset: {name}"
    else:
        bound = f"N < {tier.below:,}" if tier.below else "the largest tier"
        line = (f"preset: custom-{tier.name} (N = {num_queries:,} training queries, {bound}; "
                "README 'Training on your own data')")
    overridden = [flag for flag, value in (("--config", args.config), ("--epochs", args.epochs),
                                           ("--max-steps", args.max_steps)) if value is not None]
    return line + (f"; overridden by {', '.join(overridden)}" if overridden else "")


def data_locations(data, cache_dir) -> str:
    """Where the data is read from and where the prepared copy goes (it can be large: README, 'Disk use')."""
    import datasets

    folders = {os.path.dirname(path) for path in data.settings.annotation_files.values()}
    cache = os.path.abspath(cache_dir) if cache_dir else datasets.config.HF_DATASETS_CACHE
    return f"data: {', '.join(sorted(folders))}; prepared features cached in {cache} (--cache-dir)"


def held_out_split_of(data) -> str | None:
    """A labelled test split that did not choose the epoch (QVHighlights with its released test ground truth, the
    synthetic data); None when the evaluation split is the test split (Charades-STA) or there is none."""
    from ..training import _has_ground_truth

    if data.eval_split in (None, "test") or "test" not in data.splits:
        return None
    return "test" if _has_ground_truth(data.splits["test"]) else None


def use_epoch_report(trainer, selection_metric: str, split: str | None):
    """One aligned line per evaluation instead of the Trainer's dicts; no "Writing model shards" bars."""
    from transformers import PrinterCallback, ProgressCallback
    from transformers.utils import logging as transformers_logging

    from ..training_report import EpochReportCallback, QuietProgressCallback

    transformers_logging.disable_progress_bar()  # the per-save shard bar; the Trainer's own bar is separate
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgressCallback())
    trainer.pop_callback(PrinterCallback)
    report = EpochReportCallback(selection_metric, split or "-")
    trainer.add_callback(report)
    return report


def _resume_hint(folder: Path) -> str:
    checkpoints = list(folder.glob("checkpoint-*")) if folder.is_dir() else []
    if not checkpoints:
        return "no checkpoint was saved yet (one is saved every epoch or --save-steps)"
    return f"add --resume to the same command to continue from the latest checkpoint in {folder}"


def save_trained_model(model, processor, output_dir: Path, metrics, predictions, data, args) -> None:
    """Weights + config + processor (+ model card when the hub module is present), metrics.json and
    predictions.jsonl."""
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    if metrics is not None:
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if predictions:
        with open(output_dir / "predictions.jsonl", "w") as handle:
            for record in predictions:
                handle.write(json.dumps(record) + "\n")
    try:
        from ..hub import write_model_card
    except ImportError:
        return
    write_model_card(output_dir, model.config, metrics, dataset_name=data.name)
