"""``td-detr score``: score a submission JSONL against ground-truth annotations (the official QVHighlights metrics).

    td-detr score --predictions hl_val_submission.jsonl --ground-truth highlight_val_release.jsonl --output m.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..metrics.table import format_metrics_table

__all__ = ["add_parser", "format_metrics_table", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help="score a prediction JSONL against ground truth (QVHighlights / Charades-STA metrics)",
        description=(
            "Score a submission (one JSON line per query: qid, pred_relevant_windows as [start, end, score] sorted "
            "by score, optional pred_saliency_scores) against annotation JSONL with the official QVHighlights "
            "metrics: R1@IoU, mAP@IoU per GT-length bucket, mIoU, and highlight HIT@1 / mAP. Prints a table and "
            "optionally writes the metrics as JSON."
        ),
    )
    parser.add_argument("--predictions", required=True, type=Path, help="submission JSONL")
    parser.add_argument("--ground-truth", required=True, type=Path, help="annotation JSONL with relevant_windows")
    parser.add_argument("--output", type=Path, default=None, help="write the metrics JSON here")
    parser.add_argument(
        "--clip-length", type=float, default=2.0, help="seconds per saliency clip (default 2, as QVHighlights)"
    )
    parser.add_argument(
        "--allow-missing", action="store_true",
        help="score only the submitted queries instead of failing when some ground-truth qids are missing",
    )
    parser.add_argument(
        "--charades", action="store_true",
        help="Charades-STA mode: moment metrics only, saliency ignored (also automatic when the GT has no saliency)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import TDDetrInputError
    from ..metrics import evaluate_submission, read_jsonl
    from ..metrics.submission import ground_truth_has_saliency
    from ..output_paths import check_not_an_input, check_writable_file

    if not args.clip_length > 0:
        raise TDDetrInputError(f"--clip-length must be positive, got {args.clip_length}")
    if args.output is not None:
        check_not_an_input(args.output, "--output", {"--predictions": args.predictions,
                                                      "--ground-truth": args.ground_truth})
        check_writable_file(args.output, "--output")
    submission = read_jsonl(args.predictions, what="predictions")
    ground_truth = read_jsonl(args.ground_truth, what="ground-truth")
    submitted_saliency = any("pred_saliency_scores" in record for record in submission)
    highlights = None
    if args.charades:
        highlights = False
    elif submitted_saliency and not ground_truth_has_saliency(ground_truth):
        print(
            "note: the ground truth has no saliency labels (Charades-style); highlight metrics skipped",
            file=sys.stderr,
        )

    metrics = evaluate_submission(
        submission, ground_truth, allow_missing=args.allow_missing, clip_length=args.clip_length,
        highlights=highlights,
    )
    gt_qids = {record.get("qid") for record in ground_truth}
    scored = len(gt_qids & {record.get("qid") for record in submission})
    missing = len(gt_qids) - scored
    if missing:
        print(
            f"warning: scored {scored} of {len(gt_qids)} ground-truth queries "
            f"({missing} missing from {args.predictions}, {100 * missing / len(gt_qids):.1f}%)",
            file=sys.stderr,
        )
    empty = sum(1 for record in submission if record.get("pred_relevant_windows") == [])
    if empty:
        print(
            f"warning: {empty} queries have no predicted windows: they count as R1 misses and, as in the official "
            "evaluator, are left out of mAP",
            file=sys.stderr,
        )

    print(format_metrics_table(metrics))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(metrics, indent=4) + "\n", encoding="utf-8")
        print(f"metrics written to {args.output}")
    return 0
