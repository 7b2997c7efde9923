"""Training targets of one (query, video) row: span labels and saliency labels (reference-qd-detr.md §1.3, §1.4).

All functions are pure numpy and take an explicit ``numpy.random.Generator`` for their random choices, so a
collator seeded once gives the same labels for the same rows.

* Span labels: when a query has more than ``max_windows`` windows, a random ``max_windows`` of them are kept (QD-DETR
  shuffles and keeps the first ones); each window in seconds is divided by ``ctx_l * clip_length`` (not by the
  duration) and turned into normalised (centre, width).
* QVHighlights saliency labels (rows with ``relevant_clip_ids`` / ``saliency_scores``): per relevant clip the sum of
  the 3 annotator scores (0..12); hard positive / negative = the relevant clip with the highest / lowest sum (clamped to
  ``ctx_l - 1``), easy positive = a random relevant clip, easy negative = a random clip outside the relevant set (both
  fall back to the hard pair when no clip lies outside it).
* Charades-style pseudo labels (rows without saliency): from the first window, the clip range it covers is labelled
  1, two positives are drawn inside it and two negatives outside it (negatives fall back to the positives).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import TDDetrInputError

# How the Charades-style pseudo labels map seconds to clips.
#   "clip_length": seconds / clip_length (official TD-DETR; consistent with the span labels, which divide by
#                  ctx_l * clip_length, and the only meaningful choice for synthesized videos);
#   "duration":    seconds / (duration / ctx_l) (CG-DETR / QD-DETR family).
PSEUDO_LABEL_CLIP_MODES = ("clip_length", "duration")


def windows_to_span_labels(
    windows: np.ndarray, ctx_l: int, clip_length: float, max_windows: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Normalised (centre, width) span targets, float32 [n, 2] with n <= max_windows.

    ``windows`` are [st, ed] seconds. More than ``max_windows`` windows: a random subset of ``max_windows`` is kept in
    random order (as QD-DETR's shuffle-then-truncate); otherwise all are kept in their given order. Spans are not
    clamped (the reference does not clamp either).
    """
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    if max_windows is not None and len(windows) > max_windows:
        windows = windows[rng.permutation(len(windows))[:max_windows]]
    scaled = windows / (ctx_l * clip_length)
    return np.stack([scaled.mean(axis=1), scaled[:, 1] - scaled[:, 0]], axis=1).astype(np.float32)


def qvhighlights_saliency_labels(
    clip_ids: np.ndarray, scores: np.ndarray, ctx_l: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QVHighlights saliency labels (QD-DETR ``get_saliency_labels_all`` with one pair of each kind).

    Returns ``pos`` int64 [2] = [hard_pos, easy_pos], ``neg`` int64 [2] = [hard_neg, easy_neg] and ``all`` float32
    [ctx_l] = summed annotator scores at the relevant clips, 0 elsewhere.

    Ties: the hard positive is the *last* relevant clip (in list order) with the highest sum and the hard negative the
    *first* with the lowest, which is what the reference's small-array argsort gives. Differences from the reference,
    all for ids beyond the (possibly cut) video: ids >= ctx_l are dropped from ``all`` instead of growing it by one,
    and the easy positive is drawn from ids < ctx_l only.
    """
    clip_ids = np.asarray(clip_ids, dtype=np.int64).reshape(-1)
    summed = np.asarray(scores, dtype=np.float64).reshape(len(clip_ids), -1).sum(axis=1)
    if len(clip_ids) == 0:
        raise TDDetrInputError("saliency labels need at least one relevant clip id")
    order = np.argsort(summed, kind="stable")
    last = ctx_l - 1
    hard_pos, hard_neg = min(clip_ids[order[-1]], last), min(clip_ids[order[0]], last)

    inside = clip_ids < ctx_l
    all_labels = np.zeros(ctx_l, dtype=np.float32)
    all_labels[clip_ids[inside]] = summed[inside]
    outside_mask = np.ones(ctx_l, dtype=bool)
    outside_mask[clip_ids[inside]] = False
    easy_neg_pool = np.flatnonzero(outside_mask)
    easy_pos_pool = clip_ids[inside]
    if len(easy_neg_pool) >= 1 and len(easy_pos_pool) >= 1:
        easy_pos = easy_pos_pool[rng.integers(len(easy_pos_pool))]
        easy_neg = easy_neg_pool[rng.integers(len(easy_neg_pool))]
    else:  # reference: the hard pair is copied when there is nothing to draw from
        easy_pos, easy_neg = hard_pos, hard_neg
    pos = np.array([hard_pos, easy_pos], dtype=np.int64)
    neg = np.array([hard_neg, easy_neg], dtype=np.int64)
    return pos, neg, all_labels


def _two_distinct(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two distinct indices drawn uniformly from range(n), n >= 2 (a cheap ``choice(n, 2, replace=False)``)."""
    first, second = rng.integers(n), rng.integers(n - 1)
    return np.array([first, second + (second >= first)], dtype=np.int64)


def pseudo_saliency_labels(
    window, ctx_l: int, seconds_per_clip: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Charades-style binary saliency labels from one window (``get_saliency_labels_sub_as_query`` with 2 pairs).

    The window [st, ed] covers clips ``floor(st / c)`` .. ``min(floor(ed / c), ctx_l) - 1`` with c =
    ``seconds_per_clip``; the start is forced <= the end, and both are kept inside [0, ctx_l - 1] (the reference can
    produce index -1 for a window ending within the first clip). Two positives are drawn without replacement inside
    the range (both = the start when it is one clip); two negatives outside it, or the positives when fewer than two
    clips lie outside. Returns ``pos`` int64 [2], ``neg`` int64 [2], ``all`` float32 [ctx_l] (1 inside, 0 outside).
    """
    st, ed = float(window[0]), float(window[1])
    gt_ed = min(max(min(math.floor(ed / seconds_per_clip), ctx_l) - 1, 0), ctx_l - 1)
    gt_st = min(max(math.floor(st / seconds_per_clip), 0), gt_ed)
    pos = gt_st + _two_distinct(gt_ed - gt_st + 1, rng) if gt_st < gt_ed else np.array([gt_st, gt_st])
    outside = np.concatenate([np.arange(0, gt_st), np.arange(gt_ed + 1, ctx_l)])
    neg = outside[_two_distinct(len(outside), rng)] if len(outside) >= 2 else pos.copy()
    all_labels = np.zeros(ctx_l, dtype=np.float32)
    all_labels[gt_st : gt_ed + 1] = 1.0
    return pos.astype(np.int64), neg.astype(np.int64), all_labels


def row_labels(
    windows,
    clip_ids,
    scores,
    ctx_l: int,
    clip_length: float,
    duration: float,
    rng: np.random.Generator,
    max_windows: int | None = 5,
    pseudo_label_clip: str = "clip_length",
) -> dict[str, np.ndarray]:
    """All targets of one row as numpy arrays: ``spans`` [n, 2], ``saliency_pos_labels`` [2],
    ``saliency_neg_labels`` [2], ``saliency_all_labels`` [ctx_l].

    Rows with relevant clip ids get QVHighlights labels, others Charades-style pseudo labels from their first window,
    with seconds mapped to clips by ``clip_length`` or by ``duration / ctx_l`` (``pseudo_label_clip``, see
    :data:`PSEUDO_LABEL_CLIP_MODES`). ``windows`` must hold at least one [st, ed] pair.
    """
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    if len(windows) == 0:
        raise TDDetrInputError("labels need at least one relevant window")
    # Draw order is fixed (spans first, then saliency) so a seeded generator reproduces the same labels.
    spans = windows_to_span_labels(windows, ctx_l, clip_length, max_windows, rng)
    clip_ids = np.asarray(clip_ids, dtype=np.int64).reshape(-1)
    if len(clip_ids):
        pos, neg, all_labels = qvhighlights_saliency_labels(clip_ids, scores, ctx_l, rng)
    else:
        if pseudo_label_clip == "clip_length":
            seconds_per_clip = clip_length
        elif pseudo_label_clip == "duration":
            seconds_per_clip = duration / ctx_l
        else:
            raise TDDetrInputError(
                f"pseudo_label_clip must be one of {PSEUDO_LABEL_CLIP_MODES}, got {pseudo_label_clip!r}"
            )
        pos, neg, all_labels = pseudo_saliency_labels(windows[0], ctx_l, seconds_per_clip, rng)
    return {
        "spans": spans,
        "saliency_pos_labels": pos,
        "saliency_neg_labels": neg,
        "saliency_all_labels": all_labels,
    }
