"""Moment-retrieval metrics: R1@IoU, mIoU and mAP@IoU per GT-length bucket.

Vectorised over all queries at once, and numerically equal to the official QVHighlights evaluator
(moment_detr ``standalone_eval/eval.py``) to the 2 decimals it prints, quirks included:

- R1 takes the FIRST submitted window (no re-sorting) against the GT window it overlaps most (first on ties),
  with IoU = intersection / (max end - min start), 0/0 = 0;
- mAP keeps the first 10 submitted windows, sorts them by score (stable), and matches each one greedily to the
  untaken GT windows in the descending-IoU order ``np.argsort(iou)[::-1]`` gives (so IoU ties resolve exactly as
  there), then takes the VOC-style interpolated area per query; a query with no windows is left out of the mean;
- buckets (short (0, 10], middle (10, 30], long (30, 150] s of GT length) keep only the in-range GT windows and the
  queries that have one, with all their predictions (so matches to out-of-range GT are false positives);
- an empty bucket gives zeros (as the CG-DETR / TD-DETR evaluators; moment_detr's crashes).

R1 is reported at the moment_detr (0.5:0.05:0.95), CG-DETR (0.3:0.05:0.95) and TD-DETR (0.1:0.1:1.0) thresholds,
plus ``MR-mIoU`` (100 x mean top-1 IoU, as CG-DETR / TD-DETR report it).
"""

from __future__ import annotations

import numpy as np


def round2(value: float) -> float:
    """The official formatting of every number: ``float(f"{value:.2f}")``."""
    return float(f"{value:.2f}")


# The official code rounds its linspace thresholds to 2 decimals before using them.
MAP_IOU_THRESHOLDS = tuple(round2(t) for t in np.linspace(0.5, 0.95, 10))
R1_IOU_THRESHOLDS = tuple(
    sorted(
        {round2(t) for t in np.linspace(0.5, 0.95, 10)}  # moment_detr
        | {round2(t) for t in np.linspace(0.3, 0.95, 14)}  # CG-DETR
        | {round2(t) for t in np.linspace(0.1, 1.0, 10)}  # TD-DETR
    )
)
# (min, max] on the GT window length in seconds; None = every window, unfiltered.
LENGTH_BUCKETS = {"full": None, "long": (30, 150), "middle": (10, 30), "short": (0, 10)}
MAX_PRED_WINDOWS = 10


def temporal_iou_cross(start_a, end_a, start_b, end_b) -> np.ndarray:
    """Broadcast IoU with the true union, in the official arithmetic order; NaN where both spans have length 0."""
    inter = np.clip(np.minimum(end_a, end_b) - np.maximum(start_a, start_b), 0, None)
    union = (end_a - start_a) + (end_b - start_b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def temporal_iou_paired(start_a, end_a, start_b, end_b) -> np.ndarray:
    """The official R1 IoU: intersection / (max end - min start), i.e. the union when the spans overlap; 0/0 = 0."""
    inter = np.maximum(0, np.minimum(end_a, end_b) - np.maximum(start_a, start_b))
    hull = np.maximum(end_a, end_b) - np.minimum(start_a, start_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hull != 0, inter / np.where(hull != 0, hull, 1), 0.0)


def top1_iou(windows: np.ndarray, num_windows: np.ndarray, gt_windows: np.ndarray, num_gt: np.ndarray) -> np.ndarray:
    """IoU of each query's first submitted window with its best-overlapping GT window: [Q]; 0 with no windows."""
    start, end = windows[:, 0, 0], windows[:, 0, 1]
    gt_valid = np.arange(gt_windows.shape[1]) < num_gt[:, None]
    cross = temporal_iou_cross(start[:, None], end[:, None], gt_windows[..., 0], gt_windows[..., 1])
    # np.argmax takes the first maximum and treats NaN as the maximum, exactly like the official per-query argmax.
    best = np.argmax(np.where(gt_valid, cross, -np.inf), axis=1)
    gt = gt_windows[np.arange(len(best)), best]
    iou = temporal_iou_paired(start, end, gt[:, 0], gt[:, 1])
    return np.where(num_windows > 0, iou, 0.0)  # the official crashes on an empty list; count it as a miss


def _descending_iou_ranks(iou: np.ndarray, num_gt: np.ndarray) -> np.ndarray:
    """rank[q, k, g] = position of GT g in the official ``tiou_arr.argsort()[::-1]`` order for prediction k.

    Rows are grouped by their GT count so that np.argsort sees exactly the arrays the official code sorts; IoU ties
    then resolve identically whatever sorting kernel numpy uses.
    """
    num_queries, num_preds, width = iou.shape
    ranks = np.full(iou.shape, width, dtype=np.intp)
    for count in np.unique(num_gt):
        rows = np.flatnonzero(num_gt == count)
        descending = np.argsort(iou[rows, :, :count], axis=-1)[..., ::-1]
        block = np.empty((len(rows), num_preds, count), dtype=np.intp)
        np.put_along_axis(block, descending, np.arange(count), axis=-1)
        ranks[rows, :, :count] = block
    return ranks


def detection_average_precision(
    windows: np.ndarray, num_windows: np.ndarray, gt_windows: np.ndarray, num_gt: np.ndarray,
    thresholds=MAP_IOU_THRESHOLDS,
) -> np.ndarray:
    """Per-query ActivityNet-style AP at each IoU threshold: [Q, T].

    ``windows`` [Q, K, 3] (start, end, score) in submitted order with ``num_windows`` valid per row (already cut
    to the first 10); ``gt_windows`` [Q, G, 2] with ``num_gt`` >= 1 valid per row. Rows without windows get 0
    (callers leave them out of the mean, as the official code does).
    """
    # Rows are processed in chunks of similar GT count, so that a few queries with 20+ GT windows do not pad the
    # [Q, T, K, G] matching arrays of all the others.
    ap = np.zeros((len(num_gt), len(thresholds)))
    chunk = np.ceil(np.log2(np.maximum(num_gt, 1))).astype(np.int64)
    for key in np.unique(chunk):
        rows = np.flatnonzero(chunk == key)
        width = int(num_gt[rows].max())
        ap[rows] = _detection_average_precision(
            windows[rows], num_windows[rows], gt_windows[rows, :width], num_gt[rows], thresholds
        )
    return ap


def _detection_average_precision(windows, num_windows, gt_windows, num_gt, thresholds) -> np.ndarray:
    num_queries, num_preds = windows.shape[:2]
    width = gt_windows.shape[1]
    thresholds = np.asarray(thresholds, dtype=np.float64)
    pred_valid = np.arange(num_preds) < num_windows[:, None]
    # Stable sort by descending score (Python's list.sort in the official code), padding last.
    order = np.argsort(np.where(pred_valid, -windows[..., 2], np.inf), axis=1, kind="stable")
    windows = np.take_along_axis(windows, order[..., None], axis=1)
    iou = temporal_iou_cross(
        windows[:, :, None, 0], windows[:, :, None, 1], gt_windows[:, None, :, 0], gt_windows[:, None, :, 1]
    )  # [Q, K, G]
    ranks = _descending_iou_ranks(iou, num_gt)
    gt_valid = np.arange(width) < num_gt[:, None]
    # The official loop stops at the first GT (in that order) with IoU < threshold; NaN < t is False, so NaN passes.
    passing = ~(iou[:, None] < thresholds[None, :, None, None]) & gt_valid[:, None, None, :]  # [Q, T, K, G]

    # Greedy matching: predictions one by one (at most 10 steps), all queries and thresholds at once.
    taken = np.zeros((num_queries, len(thresholds), width), dtype=bool)
    true_pos = np.zeros((num_queries, len(thresholds), num_preds), dtype=bool)
    query_index, threshold_index = np.indices(taken.shape[:2])
    for k in range(num_preds):
        eligible = passing[:, :, k] & ~taken
        choice = np.where(eligible, ranks[:, None, k], width + 1).argmin(axis=-1)
        hit = eligible.any(axis=-1) & pred_valid[:, None, k]
        true_pos[:, :, k] = hit
        taken[query_index[hit], threshold_index[hit], choice[hit]] = True

    valid = pred_valid[:, None, :]
    tp = np.cumsum(true_pos, axis=-1)
    fp = np.cumsum(valid & ~true_pos, axis=-1)
    recall = tp / np.maximum(num_gt, 1)[:, None, None]
    precision = np.where(valid, tp / np.maximum(tp + fp, 1), 0.0)
    # VOC interpolation: precision made non-increasing from the right; area over the recall steps.
    interpolated = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]
    recall_step = np.diff(recall, axis=-1, prepend=0.0)
    return (recall_step * interpolated).sum(axis=-1)


def _empty_bucket(map_thresholds, r1_thresholds) -> dict:
    return {
        "MR-mAP": {**{str(t): 0.0 for t in map_thresholds}, "average": 0.0},
        "MR-R1": {str(t): 0.0 for t in r1_thresholds},
        "MR-mIoU": 0.0,
        "num_queries": 0,
    }


def moment_retrieval_metrics(
    windows: np.ndarray, num_windows: np.ndarray, gt_windows: np.ndarray, num_gt: np.ndarray, *,
    map_thresholds=MAP_IOU_THRESHOLDS, r1_thresholds=R1_IOU_THRESHOLDS, buckets=LENGTH_BUCKETS,
    max_pred_windows: int | None = MAX_PRED_WINDOWS,
) -> dict:
    """Per-bucket ``{"MR-mAP": {thr: .., "average": ..}, "MR-R1": {thr: ..}, "MR-mIoU": .., "num_queries": n}``.

    Inputs as for :func:`detection_average_precision` (``windows`` may hold more than 10 per row: they are cut to
    ``max_pred_windows`` for mAP only). Values are percentages rounded like the official evaluator.
    """
    if max_pred_windows is not None:
        windows, num_windows = windows[:, :max_pred_windows], np.minimum(num_windows, max_pred_windows)
    gt_valid = np.arange(gt_windows.shape[1]) < num_gt[:, None]
    gt_length = gt_windows[..., 1] - gt_windows[..., 0]
    results = {}
    for name, bounds in sorted(buckets.items()):
        in_bucket = gt_valid if bounds is None else gt_valid & (bounds[0] < gt_length) & (gt_length <= bounds[1])
        rows = np.flatnonzero(in_bucket.any(axis=1))
        if len(rows) == 0:
            results[name] = _empty_bucket(map_thresholds, r1_thresholds)
            continue
        # Keep only the in-range GT windows, moved to the front in their original order.
        order = np.argsort(~in_bucket[rows], axis=1, kind="stable")
        bucket_gt = np.take_along_axis(gt_windows[rows], order[..., None], axis=1)
        bucket_num_gt = in_bucket[rows].sum(axis=1)
        bucket_gt = bucket_gt[:, : bucket_num_gt.max()]
        iou = top1_iou(windows[rows], num_windows[rows], bucket_gt, bucket_num_gt)
        scored = rows[num_windows[rows] > 0]  # the official mAP silently leaves out queries with no windows
        if len(scored):
            ap = detection_average_precision(
                windows[scored], num_windows[scored], bucket_gt[num_windows[rows] > 0],
                bucket_num_gt[num_windows[rows] > 0], map_thresholds,
            )
            ap_per_threshold = ap.mean(axis=0)
        else:
            ap_per_threshold = np.zeros(len(map_thresholds))
        mean_ap = {str(t): round2(100 * v) for t, v in zip(map_thresholds, ap_per_threshold)}
        mean_ap["average"] = round2(100 * np.mean(ap_per_threshold))
        results[name] = {
            "MR-mAP": mean_ap,
            "MR-R1": {str(t): round2(np.mean(iou >= t) * 100) for t in r1_thresholds},
            "MR-mIoU": round2(np.mean(iou) * 100),
            "num_queries": int(len(rows)),
        }
    return results
