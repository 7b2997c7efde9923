"""Span and saliency label derivation (reference-qd-detr.md §1.3, §1.4) on hand-computed rows and the real files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_detr.data.labels import (
    pseudo_saliency_labels,
    qvhighlights_saliency_labels,
    row_labels,
    windows_to_span_labels,
)
from td_detr.data.layout import read_annotations
from td_detr.errors import TDDetrInputError

from fixture_files import CHARADES_STA, QVHIGHLIGHTS


def rng(seed=0):
    return np.random.default_rng(seed)


def test_span_labels_divide_by_ctx_len_times_clip_length():
    windows = np.array([[2.0, 6.0], [0.0, 10.0]])
    spans = windows_to_span_labels(windows, ctx_l=5, clip_length=2.0, max_windows=5, rng=rng())
    np.testing.assert_allclose(spans, [[0.4, 0.4], [0.5, 1.0]])


def test_more_than_max_windows_keeps_a_random_subset():
    windows = np.array([[2.0 * i, 2.0 * i + 1] for i in range(7)])
    spans = windows_to_span_labels(windows, ctx_l=20, clip_length=2.0, max_windows=5, rng=rng(3))
    everything = windows_to_span_labels(windows, ctx_l=20, clip_length=2.0, max_windows=None, rng=rng(3))
    assert spans.shape == (5, 2)
    assert len({tuple(s) for s in spans.tolist()}) == 5
    assert {tuple(s) for s in spans.tolist()} <= {tuple(s) for s in everything.tolist()}
    draws = {tuple(map(tuple, windows_to_span_labels(windows, 20, 2.0, 5, rng(seed)).tolist())) for seed in range(20)}
    assert len(draws) > 1  # the subset (and its order) is random


def test_qvhighlights_saliency_hand_computed():
    # agg = [3, 12, 12, 3]: hard positive = last of the highest (clip 4), hard negative = first of the lowest (clip 2).
    pos, neg, all_labels = qvhighlights_saliency_labels(
        np.array([2, 3, 4, 5]), np.array([[1, 1, 1], [4, 4, 4], [4, 4, 4], [0, 1, 2]]), ctx_l=8, rng=rng()
    )
    np.testing.assert_array_equal(all_labels, [0, 0, 3, 12, 12, 3, 0, 0])
    assert pos[0] == 4 and neg[0] == 2
    assert pos[1] in {2, 3, 4, 5} and neg[1] in {0, 1, 6, 7}
    assert pos.dtype == np.int64 and all_labels.dtype == np.float32


def test_qvhighlights_saliency_edge_cases():
    # Every clip relevant: no easy negative exists, so the hard pair is copied.
    scores = np.array([[4, 4, 4], [0, 0, 0], [2, 2, 2]])
    pos, neg, _ = qvhighlights_saliency_labels(np.array([0, 1, 2]), scores, 3, rng())
    np.testing.assert_array_equal(pos, [0, 0])
    np.testing.assert_array_equal(neg, [1, 1])
    # Ids beyond a cut video: hard indices clamp to ctx_l - 1, the label array keeps its length.
    pos, neg, all_labels = qvhighlights_saliency_labels(np.array([3, 9]), np.array([[1, 1, 1], [4, 4, 4]]), 5, rng())
    assert pos[0] == 4 and neg[0] == 3 and pos[1] == 3
    np.testing.assert_array_equal(all_labels, [0, 0, 0, 3, 0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), ctx_l=st.integers(2, 30), data=st.data())
def test_qvhighlights_easy_pairs_are_inside_and_outside_the_relevant_set(seed, ctx_l, data):
    ids = np.array(sorted(data.draw(st.sets(st.integers(0, ctx_l - 1), min_size=1, max_size=ctx_l))))
    scores = np.random.default_rng(seed).integers(0, 5, (len(ids), 3))
    pos, neg, all_labels = qvhighlights_saliency_labels(ids, scores, ctx_l, rng(seed))
    summed = scores.sum(axis=1)
    assert summed[list(ids).index(pos[0])] == summed.max() and summed[list(ids).index(neg[0])] == summed.min()
    if len(ids) < ctx_l:
        assert pos[1] in ids and neg[1] not in ids
    np.testing.assert_array_equal(all_labels[ids], summed)
    assert all_labels.sum() == summed.sum()


def test_pseudo_labels_hand_computed():
    # [1.5, 4.2] s with 1-s clips: clips 1..3 (floor(4.2) = 4 is exclusive).
    pos, neg, all_labels = pseudo_saliency_labels([1.5, 4.2], ctx_l=6, seconds_per_clip=1.0, rng=rng())
    np.testing.assert_array_equal(all_labels, [0, 1, 1, 1, 0, 0])
    assert set(pos) <= {1, 2, 3} and pos[0] != pos[1]
    assert set(neg) <= {0, 4, 5} and neg[0] != neg[1]


def test_pseudo_labels_edge_cases():
    # One clip: both positives are it. Whole video: negatives fall back to the positives.
    pos, neg, all_labels = pseudo_saliency_labels([2.0, 3.0], 5, 1.0, rng())
    np.testing.assert_array_equal(pos, [2, 2])
    np.testing.assert_array_equal(all_labels, [0, 0, 1, 0, 0])
    pos, neg, all_labels = pseudo_saliency_labels([0.0, 5.0], 5, 1.0, rng())
    np.testing.assert_array_equal(neg, pos)
    assert all_labels.sum() == 5
    # A window ending inside the first clip stays at clip 0 (the reference would index -1).
    pos, neg, all_labels = pseudo_saliency_labels([0.2, 0.8], 4, 1.0, rng())
    np.testing.assert_array_equal(pos, [0, 0])
    np.testing.assert_array_equal(all_labels, [1, 0, 0, 0])


def test_row_labels_picks_the_derivation_and_the_clip_mode():
    charades = dict(windows=[[1.5, 4.2]], clip_ids=[], scores=[], ctx_l=6, clip_length=1.0, duration=12.0)
    by_clip = row_labels(**charades, rng=rng())
    by_duration = row_labels(**charades, rng=rng(), pseudo_label_clip="duration")  # 2 s per clip
    np.testing.assert_array_equal(by_clip["saliency_all_labels"], [0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(by_duration["saliency_all_labels"], [1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(by_clip["spans"], [[(1.5 + 4.2) / 12, 2.7 / 6]], rtol=1e-6)

    qvh = row_labels([[2, 6]], [1, 2], [[1, 1, 1], [4, 4, 4]], ctx_l=5, clip_length=2.0, duration=10.0, rng=rng())
    np.testing.assert_array_equal(qvh["saliency_all_labels"], [0, 3, 12, 0, 0])
    assert qvh["saliency_pos_labels"][0] == 2 and qvh["saliency_neg_labels"][0] == 1
    with pytest.raises(TDDetrInputError, match="pseudo_label_clip"):
        row_labels(**charades, rng=rng(), pseudo_label_clip="seconds")
    with pytest.raises(TDDetrInputError, match="window"):
        row_labels([], [], [], 5, 2.0, 10.0, rng())


def test_labels_on_real_qvhighlights_rows():
    records = read_annotations(QVHIGHLIGHTS / "highlight_val_release.jsonl")
    for record in records:
        ctx_l = int(record["duration"] // 2)
        labels = row_labels(
            record["relevant_windows"], record["relevant_clip_ids"], record["saliency_scores"], ctx_l, 2.0,
            record["duration"], rng(record["qid"]),
        )
        summed = np.array(record["saliency_scores"]).sum(axis=1)
        assert labels["saliency_all_labels"].sum() == summed.sum()
        assert labels["saliency_all_labels"][labels["saliency_pos_labels"][0]] == summed.max()
        assert labels["saliency_all_labels"][labels["saliency_neg_labels"][0]] == summed.min()
        assert len(labels["spans"]) == min(5, len(record["relevant_windows"]))
        assert ((labels["spans"] > 0) & (labels["spans"] <= 1)).all()


def test_pseudo_labels_on_real_charades_rows():
    records = read_annotations(CHARADES_STA / "charades_sta_test_tvr_format.jsonl")
    for record in records:
        ctx_l = int(np.ceil(record["duration"]))  # 1-s clips
        labels = row_labels(record["relevant_windows"], [], [], ctx_l, 1.0, record["duration"], rng(record["qid"]))
        st_, ed = record["relevant_windows"][0]
        inside = np.flatnonzero(labels["saliency_all_labels"])
        assert inside[0] == int(st_) and inside[-1] == min(int(ed), ctx_l) - 1
        assert set(labels["saliency_pos_labels"].tolist()) <= set(inside.tolist())
