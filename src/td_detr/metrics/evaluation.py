"""``evaluate_submission``: the official QVHighlights ``eval_submission`` output, computed with vectorised numpy.

The returned dict has the official layout and key order::

    {"brief": {"MR-full-R1@0.5": .., ..., "HL-min-VeryGood-Hit1": ..},
     "HL-min-Fair": {"HL-mAP": .., "HL-Hit1": ..}, ...,
     "full": {"MR-mAP": {"0.5": .., ..., "average": ..}, "MR-R1": {"0.5": .., ...}},
     "long": {..}, "middle": {..}, "short": {..}}

plus extra keys the official moment_detr output lacks: ``MR-R1`` also at 0.1..0.45 and 1.0, per-bucket ``MR-mIoU``
and ``num_queries``, and ``MR-full-R1@0.3`` / ``MR-full-mIoU`` in the brief (the CG-DETR / TD-DETR additions, for
Charades-STA). Every official key carries the official value.
"""

from __future__ import annotations

import numpy as np

from ..errors import TDDetrInputError
from .highlight_detection import highlight_metrics
from .moment_retrieval import MAX_PRED_WINDOWS, detection_average_precision, moment_retrieval_metrics
from .submission import (
    InputProblems, ground_truth_has_saliency, pack_ground_truth, pack_submission, require_records,
)

BRIEF_MOMENT_KEYS = {  # brief key -> (bucket, metric, threshold)
    "MR-full-mAP": ("full", "MR-mAP", "average"),
    "MR-full-mAP@0.5": ("full", "MR-mAP", "0.5"),
    "MR-full-mAP@0.75": ("full", "MR-mAP", "0.75"),
    "MR-short-mAP": ("short", "MR-mAP", "average"),
    "MR-middle-mAP": ("middle", "MR-mAP", "average"),
    "MR-long-mAP": ("long", "MR-mAP", "average"),
    "MR-full-R1@0.3": ("full", "MR-R1", "0.3"),
    "MR-full-R1@0.5": ("full", "MR-R1", "0.5"),
    "MR-full-R1@0.7": ("full", "MR-R1", "0.7"),
    "MR-full-mIoU": ("full", "MR-mIoU", None),
}


def _listed(qids) -> list[int]:
    return sorted(int(q) for q in qids)


def evaluate_submission(
    submission: list[dict], ground_truth: list[dict], *, match_number: bool = True, allow_missing: bool = False,
    clip_length: float = 2.0, highlights: bool | None = None, max_pred_windows: int = MAX_PRED_WINDOWS,
) -> dict:
    """Score a moment-retrieval / highlight-detection submission like the official QVHighlights evaluator.

    Args:
        submission: records with ``qid`` and ``pred_relevant_windows`` ([start, end, score], sorted by score: R1
            uses the first one) and/or ``pred_saliency_scores`` (one per clip).
        ground_truth: annotation records (``qid``, ``relevant_windows``, and for highlights ``duration``,
            ``relevant_clip_ids``, ``saliency_scores``).
        match_number: official semantics: True requires the submitted qids to equal the GT qids; False scores
            only the qids both share.
        allow_missing: score only the submitted queries, but still reject qids absent from the GT.
        clip_length: seconds per saliency clip (the GT has int(duration / clip_length) clips).
        highlights: compute HL metrics; None = when the submission has saliency and the GT has saliency labels.
        max_pred_windows: windows per query used for mAP (10 officially).

    Returns:
        the official nested metrics dict (see the module docstring).

    Raises:
        TDDetrInputError: one error listing every problem (malformed records, duplicate / missing / unknown qids,
            bad windows, non-finite numbers), naming the offending qids.
    """
    require_records(submission, "submission")
    require_records(ground_truth, "ground truth")
    if not isinstance(max_pred_windows, int) or isinstance(max_pred_windows, bool) or max_pred_windows < 1:
        raise TDDetrInputError(f"max_pred_windows must be a positive int (10 officially), got {max_pred_windows!r}")
    problems = InputProblems()
    # Validate everything the submission holds (all windows, not only the first 10); cut for mAP later.
    predictions = pack_submission(submission, max_windows=None, problems=problems)
    if highlights is None:
        highlights = predictions.saliency is not None and ground_truth_has_saliency(ground_truth)
    elif highlights and predictions.saliency is None and not problems:
        problems.add("submission: highlight metrics requested but no 'pred_saliency_scores'", ["all records"])
    moments = all("pred_relevant_windows" in record for record in submission)
    truth = pack_ground_truth(
        ground_truth, moments=moments, highlights=highlights, clip_length=clip_length, problems=problems
    )
    gt_qids, pred_qids = set(truth.qids.tolist()), set(predictions.qids.tolist())
    if match_number and not allow_missing:
        problems.add("qids in the ground truth but not in the submission", _listed(gt_qids - pred_qids))
    if match_number or allow_missing:
        problems.add("qids in the submission but not in the ground truth", _listed(pred_qids - gt_qids))
    problems.raise_if_any()
    predictions, truth = _aligned(predictions, truth, problems)

    metrics, brief = {}, {}
    if moments:
        per_bucket = moment_retrieval_metrics(
            predictions.windows, predictions.num_windows, truth.windows, truth.num_windows,
            max_pred_windows=max_pred_windows,
        )
        metrics.update(per_bucket)
        for key, (bucket, metric, threshold) in sorted(BRIEF_MOMENT_KEYS.items()):
            value = per_bucket[bucket][metric]
            brief[key] = value if threshold is None else value[threshold]
    if highlights:
        per_level = highlight_metrics(predictions.saliency, predictions.num_saliency, truth.saliency, truth.num_clips)
        metrics.update(per_level)
        for level, values in per_level.items():
            for name, value in values.items():
                brief[f"{level}-{name.split('-')[1]}"] = value
    return {"brief": brief, **dict(sorted(metrics.items()))}


def _aligned(predictions, truth, problems: InputProblems):
    """Both restricted to the shared qids, in submission order (as the official code iterates)."""
    keep = np.flatnonzero(np.isin(predictions.qids, truth.qids))
    predictions = predictions.take(keep)
    gt_row = {qid: row for row, qid in enumerate(truth.qids.tolist())}
    truth = truth.take(np.array([gt_row[q] for q in predictions.qids.tolist()], dtype=np.intp))
    if len(predictions.qids) == 0:
        problems.add("no qid is shared by the submission and the ground truth", ["all records"])
        problems.raise_if_any()
    return predictions, truth


def per_query_average_precision(
    submission: list[dict], ground_truth: list[dict], *, max_pred_windows: int = MAX_PRED_WINDOWS,
) -> dict[int, float]:
    """qid -> the query's average precision (0..1) averaged over the mAP IoU thresholds, for every query that
    ``MR-full-mAP`` averages: 100 x the mean of these values is ``evaluate_submission(...)["brief"]["MR-full-mAP"]``
    before rounding (queries without windows are left out, as there). The submission and the ground truth must hold
    the same qids; records are validated as by :func:`evaluate_submission`."""
    require_records(submission, "submission")
    require_records(ground_truth, "ground truth")
    problems = InputProblems()
    predictions = pack_submission(submission, max_windows=max_pred_windows, problems=problems)
    truth = pack_ground_truth(ground_truth, moments=True, highlights=False, problems=problems)
    if predictions.windows is None and not problems:
        problems.add("submission: no 'pred_relevant_windows'", ["all records"])
    problems.add("qids in the ground truth but not in the submission", _listed(set(truth.qids) - set(predictions.qids)))
    problems.add("qids in the submission but not in the ground truth", _listed(set(predictions.qids) - set(truth.qids)))
    problems.raise_if_any()
    predictions, truth = _aligned(predictions, truth, problems)
    scored = predictions.num_windows > 0
    ap = detection_average_precision(
        predictions.windows[scored], predictions.num_windows[scored], truth.windows[scored], truth.num_windows[scored]
    )
    return dict(zip(predictions.qids[scored].tolist(), ap.mean(axis=1).tolist()))


def flatten_metrics(metrics: dict, sep: str = "/") -> dict[str, float]:
    """Nested metrics -> one level, keys joined with ``sep`` (e.g. ``"full/MR-mAP/0.5"``, ``"brief/MR-full-mAP"``)."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update({f"{key}{sep}{sub_key}": sub for sub_key, sub in flatten_metrics(value, sep).items()})
        else:
            flat[key] = value
    return flat


def unflatten_metrics(flat: dict[str, float], sep: str = "/") -> dict:
    """Inverse of :func:`flatten_metrics`."""
    nested: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(sep)
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested
