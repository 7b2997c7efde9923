"""Negative pairs: no training row is ever paired with its own query, nor with a query whose video (and so whose
moment clips) the row holds, including batches where one "hub" video is the partner of many anchors."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from td_detr.data.collator import DataCollatorForMomentRetrieval
from td_detr.data.negatives import choose_negatives, negative_eligibility

CLIP = 2.0


def hub_rows(seed: int, batch: int, videos: int, dim: int = 8) -> list[dict]:
    """`batch` queries on `videos` videos (queries share videos); every video mixes a common direction into its own,
    and video 0 ("hub") is almost only the common direction, so Eq. 1 makes it most anchors' partner."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=dim)
    features = {}
    for v in range(videos):
        length = int(rng.integers(6, 16))
        own = rng.normal(size=(length, dim))
        weight = 0.05 if v == 0 else 1.0
        features[f"video{v}"] = (common + weight * own).astype(np.float32)
    rows = []
    for qid in range(batch):
        vid = f"video{int(rng.integers(videos))}" if qid >= videos else f"video{qid}"
        length = len(features[vid])
        start = int(rng.integers(0, length - 1))
        end = int(rng.integers(start + 1, min(length, start + 4) + 1))
        rows.append({
            "qid": qid, "query": f"q{qid}", "vid": vid, "duration": length * CLIP,
            "video_features": features[vid], "text_features": np.full((3, 4), qid, dtype=np.float32),
            "relevant_windows": [[start * CLIP, end * CLIP]],
        })
    return rows


def assert_clean_negatives(batch: dict) -> None:
    meta, negatives = batch["meta"], batch["negative_text_index"].numpy()
    assert negatives.shape == (len(meta),)
    for row, (info, negative) in enumerate(zip(meta, negatives)):
        own_videos = {info["vid"], info.get("context_vid")}
        if negative < 0:  # only when no row of the batch has a query on other videos
            assert all(other["vid"] in own_videos for other in meta)
            continue
        chosen = meta[negative]
        assert chosen["qid"] != info["qid"], f"row {row} is paired with its own query"
        assert chosen["vid"] not in own_videos, f"row {row} holds the clips of its negative query's video"
        # the model takes the negative text from that row: it is the chosen query's text
        assert float(batch["text_features"][negative, 0, 0]) == chosen["qid"]


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    batch=st.integers(2, 12),
    videos=st.integers(1, 6),
    keep_originals=st.booleans(),
    pairing=st.sampled_from(["similarity", "random"]),
)
def test_no_row_gets_its_own_query_or_a_query_on_its_videos(seed, batch, videos, keep_originals, pairing):
    rows = hub_rows(seed, batch, min(videos, batch))
    collator = DataCollatorForMomentRetrieval(
        training=True, clip_length=CLIP, seed=seed, synthesis_pairing=pairing,
        synthesis_keep_originals=keep_originals, max_video_length=None,
    )
    assert_clean_negatives(collator(rows))


def test_a_hub_partner_shared_by_many_anchors_is_never_a_negative_of_its_rows():
    seen_hub = 0
    for seed in range(40):
        rows = hub_rows(seed, batch=10, videos=6)
        batch = DataCollatorForMomentRetrieval(training=True, clip_length=CLIP, seed=seed, max_video_length=None)(rows)
        contexts = [m["context_vid"] for m in batch["meta"] if m["synthetic"]]
        seen_hub += contexts.count("video0") >= 3
        assert_clean_negatives(batch)
    assert seen_hub >= 20  # the batches do have repeated partners


def test_evaluation_batches_with_labels_get_negatives_from_other_videos():
    rows = hub_rows(3, batch=8, videos=3)
    batch = DataCollatorForMomentRetrieval(training=False, clip_length=CLIP)(rows)
    assert_clean_negatives(batch)
    assert (batch["negative_text_index"] >= 0).all()


def test_choose_negatives_is_a_derangement_when_one_exists():
    eligible = ~np.eye(6, dtype=bool)
    for seed in range(20):
        negatives = choose_negatives(eligible, np.random.default_rng(seed))
        assert sorted(negatives) == list(range(6)) and (negatives != np.arange(6)).all()
    # rows 0, 1 and 5 hold videos 0 and 1 (synthesized), row 2 video 0, rows 3-4 video 2; a lone video has no negative
    row_videos = np.array([[0, 1], [1, 0], [0, -1], [2, -1], [2, -1], [0, 1], [3, -1]])
    query_videos = np.array([0, 1, 0, 2, 2, 0, 3])
    eligible = negative_eligibility(row_videos, query_videos)
    assert eligible[0].tolist() == [False, False, False, True, True, False, True]
    assert eligible[2].tolist() == [False, True, False, True, True, False, True]
    for seed in range(20):
        negatives = choose_negatives(eligible, np.random.default_rng(seed))
        assert all(eligible[row, negative] for row, negative in enumerate(negatives))
    assert (choose_negatives(np.ones((1, 1), bool) & False, np.random.default_rng(0)) == -1).all()
