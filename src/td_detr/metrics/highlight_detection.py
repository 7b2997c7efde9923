"""Highlight-detection metrics: HIT@1 and mAP at the Fair / Good / VeryGood saliency levels.

Vectorised over queries and annotators, and numerically equal to the official QVHighlights evaluator:

- the GT is a [num_clips, 3] array of annotator scores (0..4) with num_clips = int(duration / clip_length); a level
  binarises it per annotator (Fair >= 2, Good >= 3, VeryGood >= 4);
- HIT@1: the argmax (first maximum) of the full predicted saliency; a hit when that clip exists and ANY annotator
  marks it positive; 100 x mean over queries;
- mAP: per (query, annotator), the predictions truncated or zero-padded to num_clips, then the
  ``precision_recall_curve``-based AP of the official ``get_ap`` (reproduced without sklearn): tied scores form one
  threshold, precision is interpolated as the max over lower thresholds, and AP is the mean of that precision over
  the thresholds where recall grows, i.e. over the tie groups holding at least one positive. All-negative labels
  give 0 and all-positive labels give 1, as there. 100 x mean over all (query, annotator) pairs.
"""

from __future__ import annotations

import numpy as np

from .moment_retrieval import round2

SALIENCY_LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}


def binary_average_precision(scores: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The official ``get_ap`` for many rows at once.

    ``scores`` [R, N] float and ``valid`` [R, N] bool (positions past a row's length are ignored); ``labels``
    [R, A, N] binary, A label sets scored against the same row of scores. Returns the AP of every (row, label set):
    [R, A]. Ties in ``scores`` count as one threshold, exactly like sklearn's ``precision_recall_curve``.
    """
    num_rows, length = scores.shape
    rows = np.arange(num_rows)[:, None]
    order = np.argsort(np.where(valid, -scores, np.inf), axis=1, kind="stable")  # descending, padding last
    scores, valid = scores[rows, order], valid[rows, order]
    labels = labels.astype(bool)[rows[..., None], np.arange(labels.shape[1])[:, None], order[:, None]]
    labels &= valid[:, None]

    position = np.arange(length)
    same_as_next = np.zeros_like(valid)
    same_as_next[:, :-1] = valid[:, 1:] & (scores[:, 1:] == scores[:, :-1])
    group_end = valid & ~same_as_next  # last element of each tie group = one threshold
    group_start = valid.copy()
    group_start[:, 1:] &= ~same_as_next[:, :-1]
    start_index = np.maximum.accumulate(np.where(group_start, position, 0), axis=1)

    true_pos = np.cumsum(labels, axis=-1, dtype=np.int32)  # [R, A, N]
    true_pos_before_group = np.take_along_axis(true_pos - labels, start_index[:, None], axis=-1)
    precision = np.where(group_end[:, None], true_pos / (position + 1), 0.0)
    # Interpolated precision at a threshold = max precision over it and all lower thresholds.
    interpolated = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]
    recall_grows = group_end[:, None] & (true_pos > true_pos_before_group)
    count = recall_grows.sum(axis=-1)
    total = np.where(recall_grows, interpolated, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def highlight_metrics(
    saliency: np.ndarray, num_saliency: np.ndarray, gt_saliency: np.ndarray, num_clips: np.ndarray, *,
    levels: dict[str, int] = SALIENCY_LEVELS,
) -> dict:
    """``{"HL-min-{level}": {"HL-mAP": .., "HL-Hit1": ..}}`` in percent, rounded like the official evaluator.

    ``saliency`` [Q, P] predicted clip scores (``num_saliency`` valid per row); ``gt_saliency`` [Q, N, A] annotator
    scores with ``num_clips`` valid clips per row.
    """
    num_queries, num_pred = saliency.shape
    width = gt_saliency.shape[1]
    pred_valid = np.arange(num_pred) < num_saliency[:, None]
    top_clip = np.argmax(np.where(pred_valid, saliency, -np.inf), axis=1)
    top_exists = top_clip < num_clips
    top_scores = gt_saliency[np.arange(num_queries), np.minimum(top_clip, width - 1)]  # [Q, A]

    # Predictions truncated or zero-padded to the video's clip count.
    clip_valid = np.arange(width) < num_clips[:, None]
    aligned = np.zeros((num_queries, width))
    overlap = min(num_pred, width)
    aligned[:, :overlap] = np.where(pred_valid[:, :overlap], saliency[:, :overlap], 0.0)
    aligned = np.where(clip_valid, aligned, 0.0)

    # One sort serves every (annotator, level) label column: stack them as [Q, A * levels, N].
    min_scores = np.array(list(levels.values()))
    binary = gt_saliency.transpose(0, 2, 1)[:, :, None, :] >= min_scores[:, None]  # [Q, A, levels, N]
    ap = binary_average_precision(aligned, binary.reshape(num_queries, -1, width), clip_valid)
    ap = ap.reshape(num_queries, -1, len(levels))
    hits = top_exists[:, None] & (top_scores[..., None] >= min_scores).any(axis=1)  # [Q, levels]
    results = {}
    for index, name in enumerate(levels):
        results[f"HL-min-{name}"] = {
            "HL-mAP": round2(100 * np.mean(np.ascontiguousarray(ap[..., index]))),
            "HL-Hit1": round2(100 * np.mean(hits[:, index])),
        }
    return results
