"""`td-detr evaluate`: predict a data set with a trained model, write `predictions.jsonl` (standard submission format)
and `metrics.json` (the keys of `td-detr score`), and print the metrics table. The model's processor (saved with it)
supplies the clip length (`--clip-length` is only needed for models saved without one) and checks each feature type's
width; videos longer than the model's maximum are predicted in half-overlapping windows (or refused with
`--long-videos refuse`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..devices import pick_device
from ..errors import TDDetrInputError
from ..output_paths import check_not_a_model_folder, check_writable_dir, check_writable_file
from .data_options import add_data_arguments, resolve_data
from .device_options import add_inference_device_argument
from .flag_checks import check_positive_flags
from .model_loading import load_model
from .video_options import add_long_video_argument, add_plot_argument, plot_evaluated_query


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a trained model on a data set",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a saved model folder or a Hub repo id")
    parser.add_argument("--output-dir", required=True, help="where predictions.jsonl and metrics.json go")
    parser.add_argument("--batch-size", type=int, default=64, help="queries per forward pass (default 64); lower it if memory runs out")
    add_inference_device_argument(parser)
    add_data_arguments(parser)
    add_long_video_argument(parser)
    add_plot_argument(parser, with_qid=True)
    parser.set_defaults(func=run)


def load_model_and_data(args):
    """The model, its processor (``--long-videos`` applied) and the evaluation data, checked against each other:
    clip length and every feature type's width, after the flags and the output folder (when the command has one).
    Returns (model, processor, data, dataset)."""
    from ..processing_td_detr import load_processor

    check_positive_flags(args, "batch_size", "max_samples")
    if getattr(args, "output_dir", None) is not None:  # evaluate, spurious-eval (not demo): before any work
        check_writable_dir(args.output_dir, "--output-dir")  # never predict, then fail on the output
        check_not_a_model_folder(args.output_dir, "--output-dir")
    if getattr(args, "plot", None):
        check_writable_file(args.plot, "--plot")
    device = pick_device(getattr(args, "device", "cpu"))  # evaluate, spurious-eval: --device (demo: the CPU)
    model = load_model(args.model).to(device)
    processor = load_processor(args.model, model.config, long_video=args.long_videos)
    if args.clip_length is None:
        args.clip_length = processor.clip_length
    data = resolve_data(args, need_train=False)
    if data.eval_split is None:
        raise TDDetrInputError("the data set has no split to evaluate (give --eval-split or --eval-file)")
    if data.settings.clip_length != processor.clip_length:
        raise TDDetrInputError(f"the data has {data.settings.clip_length:g}-s clips but the model was trained on "
                               f"{processor.clip_length:g}-s clips")
    processor.check_video_feature_dims(data.settings.video_feature_dims, where="the data")
    if data.settings.text_feature_dim != model.config.text_feature_size:
        raise TDDetrInputError(f"the data has {data.settings.text_feature_dim}-d text features but the model "
                               f"expects {model.config.text_feature_size}")
    return model, processor, data, data.splits[data.eval_split]


def run(args) -> int:
    from ..data.collator import DataCollatorForMomentRetrieval
    from ..inference import predict_dataset
    from ..metrics import evaluate_submission, format_metrics_table, write_jsonl
    from ..data.ground_truth import ground_truth_records

    model, processor, data, dataset = load_model_and_data(args)
    collator = DataCollatorForMomentRetrieval.from_config(model.config, training=False, processor=processor)
    records = predict_dataset(model, dataset, collator, batch_size=args.batch_size)

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(output_dir / "predictions.jsonl", records)
    ground_truth = ground_truth_records(dataset)
    plot_evaluated_query(args, records, ground_truth, processor.clip_length)
    if not all(record.get("relevant_windows") for record in ground_truth):
        print(f"wrote {output_dir / 'predictions.jsonl'} ({len(records)} queries); the split has no ground truth")
        return 0
    metrics = evaluate_submission(records, ground_truth, clip_length=processor.clip_length)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"{data.name} / {data.eval_split}: {len(records)} queries")
    print(format_metrics_table(metrics))
    print(f"wrote {output_dir / 'predictions.jsonl'} and {output_dir / 'metrics.json'}")
    return 0
