"""Moment-retrieval and highlight-detection metrics, equal to the official QVHighlights evaluator.

Plain numpy (no sklearn, no ``evaluate`` at import time). Main entry: :func:`evaluate_submission`.
An ``evaluate`` metric module wrapping it lives at :data:`EVALUATE_MODULE_PATH`::

    import evaluate, td_detr.metrics
    metric = evaluate.load(td_detr.metrics.EVALUATE_MODULE_PATH)  # works offline
    flat = metric.compute(predictions=submission_records, references=ground_truth_records)
    nested = td_detr.metrics.unflatten_metrics(flat)  # == evaluate_submission(submission_records, ground_truth_records)
"""

from pathlib import Path

from .evaluation import evaluate_submission, flatten_metrics, per_query_average_precision, unflatten_metrics
from .highlight_detection import SALIENCY_LEVELS, binary_average_precision, highlight_metrics
from .moment_retrieval import (
    LENGTH_BUCKETS,
    MAP_IOU_THRESHOLDS,
    R1_IOU_THRESHOLDS,
    detection_average_precision,
    moment_retrieval_metrics,
    temporal_iou_cross,
    temporal_iou_paired,
    top1_iou,
)
from .submission import (
    InputProblems,
    PackedGroundTruth,
    PackedSubmission,
    pack_ground_truth,
    pack_submission,
    read_jsonl,
    write_jsonl,
)
from .table import format_metrics_table

# Path of the ``evaluate`` metric script (``evaluate.load`` accepts it offline; see its docstring).
EVALUATE_MODULE_PATH = str(Path(__file__).parent / "td_detr_moment_retrieval" / "td_detr_moment_retrieval.py")

__all__ = [
    "EVALUATE_MODULE_PATH",
    "InputProblems",
    "LENGTH_BUCKETS",
    "MAP_IOU_THRESHOLDS",
    "PackedGroundTruth",
    "PackedSubmission",
    "R1_IOU_THRESHOLDS",
    "SALIENCY_LEVELS",
    "binary_average_precision",
    "detection_average_precision",
    "evaluate_submission",
    "flatten_metrics",
    "format_metrics_table",
    "highlight_metrics",
    "moment_retrieval_metrics",
    "pack_ground_truth",
    "pack_submission",
    "per_query_average_precision",
    "read_jsonl",
    "temporal_iou_cross",
    "temporal_iou_paired",
    "top1_iou",
    "unflatten_metrics",
    "write_jsonl",
]
