"""`td-detr spurious-eval`: the spurious-correlation evaluation of a trained model (paper Fig. 1, S4.2): standard
metrics, Spurious R1 / mAP on a split whose moments are erased (lower is better), and the standard metrics on a
dynamic-context split. The derived splits are written under --output-dir in the standard layout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .data_options import add_data_arguments
from .device_options import add_inference_device_argument
from .video_options import add_long_video_argument


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "spurious-eval", help="spurious-correlation evaluation (masked moments, dynamic context)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a saved model folder or a Hub repo id")
    parser.add_argument("--output-dir", required=True, help="where the derived splits and spurious_metrics.json go")
    parser.add_argument("--fill", choices=("noise", "zeros", "other"), default="noise",
                        help="what replaces the erased moments (default: uniform noise in each feature's range)")
    parser.add_argument("--context", choices=("similarity", "random", "both"), default="both",
                        help="donor of the dynamic-context split: the most similar video by Eq. 1, a random one, or "
                             "both side by side (default); donors always come from another source video")
    parser.add_argument("--seed", type=int, default=0, help="seed of the masked and dynamic-context splits (default 0)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="queries per forward pass (default 64); lower it if memory runs out")
    add_inference_device_argument(parser)
    add_data_arguments(parser)
    add_long_video_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..spurious.report import format_spurious_report, spurious_evaluation
    from .evaluate import load_model_and_data

    model, processor, data, _ = load_model_and_data(args)
    report = spurious_evaluation(
        model, data.settings, data.eval_split, args.output_dir, fill=args.fill,
        contexts=("similarity", "random") if args.context == "both" else (args.context,),
        seed=args.seed, cache_dir=args.cache_dir, batch_size=args.batch_size, processor=processor,
    )
    output = Path(args.output_dir) / "spurious_metrics.json"
    output.write_text(json.dumps(report, indent=2))
    print(f"{data.name} / {data.eval_split}:")
    print(format_spurious_report(report))
    print(f"wrote {output}")
    return 0
