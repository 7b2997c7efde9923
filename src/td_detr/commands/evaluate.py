"""`td-detr evaluate`: predict a data set with a trained model, write `predictions.jsonl` (standard submission format)
and `metrics.json` (the keys of `td-detr score`), and print the metrics table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import TDDetrInputError
from .data_options import add_data_arguments, resolve_data
from .model_loading import load_model
from .video_options import add_plot_argument, plot_evaluated_query


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a trained model on a data set",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a saved model folder or a Hub repo id")
    parser.add_argument("--output-dir", required=True, help="where predictions.jsonl and metrics.json go")
    parser.add_argument("--batch-size", type=int, default=64)
    add_data_arguments(parser)
    add_plot_argument(parser, with_qid=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..data.collator import DataCollatorForMomentRetrieval
    from ..inference import predict_dataset
    from ..metrics import evaluate_submission, format_metrics_table
    from ..data.ground_truth import ground_truth_records

    model = load_model(args.model)
    data = resolve_data(args, need_train=False)
    if data.eval_split is None:
        raise TDDetrInputError("the data set has no split to evaluate (give --eval-split or --eval-file)")
    dataset = data.splits[data.eval_split]
    sizes = (sum(data.settings.video_feature_dims), data.settings.text_feature_dim)
    expected = (model.config.video_feature_size, model.config.text_feature_size)
    if sizes != expected:
        raise TDDetrInputError(f"the data has {sizes[0]}-d video / {sizes[1]}-d text features but the model "
                               f"expects {expected[0]} / {expected[1]}")
    if data.settings.clip_length != model.config.clip_length:
        raise TDDetrInputError(f"the data has {data.settings.clip_length}-s clips but the model was trained on "
                               f"{model.config.clip_length}-s clips")
    collator = DataCollatorForMomentRetrieval.from_config(model.config, training=False)
    records = predict_dataset(model, dataset, collator, batch_size=args.batch_size)

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "predictions.jsonl", "w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    ground_truth = ground_truth_records(dataset)
    plot_evaluated_query(args, records, ground_truth, model.config.clip_length)
    if not all(record.get("relevant_windows") for record in ground_truth):
        print(f"wrote {output_dir / 'predictions.jsonl'} ({len(records)} queries); the split has no ground truth")
        return 0
    metrics = evaluate_submission(records, ground_truth, clip_length=model.config.clip_length)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"{data.name} / {data.eval_split}: {len(records)} queries")
    print(format_metrics_table(metrics))
    print(f"wrote {output_dir / 'predictions.jsonl'} and {output_dir / 'metrics.json'}")
    return 0
