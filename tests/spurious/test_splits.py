"""Spurious-correlation evaluation splits: masked moments and dynamic context, in memory and written to disk."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_detr.data import layout
from td_detr.data.synthesis import clip_unit_vectors
from td_detr.errors import TDDetrInputError
from td_detr.processing_td_detr import load_text_features
from td_detr.spurious.splits import (
    choose_context_videos,
    source_video_id,
    dynamic_context,
    mask_moment,
    moment_mask,
    write_dynamic_context_split,
    write_masked_split,
)


def tagged_types(video: int, length: int, dims=(5, 3), seed=0):
    """Raw feature types whose column 0 is the video id and column 1 the clip index (rest random, > 0)."""
    rng = np.random.default_rng(seed + video)
    types = []
    for dim in dims:
        array = rng.uniform(0.5, 2.0, (length, dim)).astype(np.float32)
        array[:, 0] = 100 + video
        array[:, 1] = np.arange(length)
        types.append(array)
    return types


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------------------------
# Masked moments
# ----------------------------------------------------------------------------------------------------------------


def test_moment_mask_hand_computed():
    # Official rule with 2-s clips: [4, 10] ± 3 s -> clips floor(1/2)=0 .. floor(13/2)=6 (exclusive).
    np.testing.assert_array_equal(np.flatnonzero(moment_mask([[4, 10]], [], 10, 2.0)), [0, 1, 2, 3, 4, 5])
    # 1-s clips, fractional window: [3.4, 7.3] ± 3 s -> 0 .. 10; without margin the touched clips 3..7.
    np.testing.assert_array_equal(np.flatnonzero(moment_mask([[3.4, 7.3]], [], 12, 1.0)), np.arange(0, 10))
    np.testing.assert_array_equal(np.flatnonzero(moment_mask([[3.4, 7.3]], [], 12, 1.0, margin=0)), np.arange(3, 8))
    # Two windows: the gap between them survives; relevant ids are hidden too; the end is clamped.
    mask = moment_mask([[0, 2], [16, 20]], [5], 10, 2.0, margin=0)
    np.testing.assert_array_equal(np.flatnonzero(mask), [0, 5, 8, 9])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), length=st.integers(3, 40), clip=st.sampled_from([1.0, 2.0]), data=st.data())
def test_noise_mask_replaces_every_moment_clip_within_range(seed, length, clip, data):
    start = data.draw(st.integers(0, length - 1))
    end = data.draw(st.integers(start + 1, length))
    window = [[start * clip, end * clip - data.draw(st.sampled_from([0.0, 0.3]))]]
    types = tagged_types(0, length, seed=seed)
    masked, mask = mask_moment(types, window, [], clip, rng(seed))
    assert mask[start:end].all()  # every GT clip is gone
    for original, new in zip(types, masked):
        assert new.shape == original.shape and new.dtype == np.float32
        np.testing.assert_array_equal(new[~mask], original[~mask])
        assert (new[mask] != original[mask]).any(axis=1).all()  # every hidden clip really differs
        assert new[mask].min() >= original.min() and new[mask].max() <= original.max()
    again, _ = mask_moment(types, window, [], clip, rng(seed))
    assert all(np.array_equal(a, b) for a, b in zip(masked, again))


def test_zero_and_other_video_fills():
    types = tagged_types(0, 12)
    zeros, mask = mask_moment(types, [[8, 12]], [], 2.0, rng(), fill="zeros")
    assert all((z[mask] == 0).all() for z in zeros)
    other = tagged_types(1, 20)
    replaced, mask = mask_moment(types, [[8, 12]], [], 2.0, rng(), fill="other", replacement_types=other)
    for t in replaced:
        assert (t[mask, 0] == 101).all() and (np.diff(t[mask, 1]) > 0).all()  # other video's clips, in order
    np.testing.assert_array_equal(replaced[0][mask, 1], replaced[1][mask, 1])  # same clips in every type
    with pytest.raises(TDDetrInputError, match="replacement"):
        mask_moment(types, [[8, 12]], [], 2.0, rng(), fill="other")
    with pytest.raises(TDDetrInputError, match="fill"):
        mask_moment(types, [[8, 12]], [], 2.0, rng(), fill="blur")


# ----------------------------------------------------------------------------------------------------------------
# Dynamic context
# ----------------------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), length=st.integers(2, 30), other_length=st.integers(1, 40),
       placement=st.sampled_from(["random", "keep"]), data=st.data())
def test_dynamic_context_keeps_the_moment_and_replaces_the_context(seed, length, other_length, placement, data):
    start = data.draw(st.integers(0, length - 1))
    end = data.draw(st.integers(start + 1, length))
    windows = [[start * 2.0, end * 2.0]]
    clip_ids = list(range(start, end))
    types, new_windows, new_ids, shift = dynamic_context(
        tagged_types(0, length), tagged_types(1, other_length), windows, clip_ids, 2.0, rng(seed), placement
    )
    for t in types:
        assert len(t) == length
        block = slice(start + shift, end + shift)
        np.testing.assert_array_equal(t[block, 0], 100)
        np.testing.assert_array_equal(t[block, 1], np.arange(start, end))  # intact, in order, at the new span
        context = np.ones(length, dtype=bool)
        context[block] = False
        assert (t[context, 0] == 101).all() and (np.diff(t[context, 1]) >= 0).all()
    np.testing.assert_array_equal(types[0][:, 1], types[1][:, 1])
    np.testing.assert_allclose(new_windows, np.array(windows) + shift * 2.0)
    np.testing.assert_array_equal(new_ids, np.array(clip_ids) + shift)
    if placement == "keep":
        assert shift == 0


def test_context_videos_by_eq1_and_at_random():
    arrays = {f"v{i}": tagged_types(i, 4 + i, seed=i) for i in range(5)}
    contexts = choose_context_videos(list(arrays) + ["v0"], arrays.__getitem__, "similarity")
    names = list(arrays)
    def units(name):  # the loader's per-type normalisation, then the full-vector cosine
        parts = [x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5) for x in arrays[name]]
        return clip_unit_vectors(np.concatenate(parts, axis=1))

    scores = np.full((5, 5), -np.inf)
    for j, a in enumerate(names):
        for l, b in enumerate(names):
            if j != l:
                pair = units(a) @ units(b).T  # literal Eq. 1: all clip pairs but p = q
                same = np.trace(pair[: min(pair.shape), : min(pair.shape)])
                scores[j, l] = (pair.sum() - same) / pair.size
    assert contexts == {a: names[int(np.argmax(scores[j]))] for j, a in enumerate(names)}
    random_contexts = choose_context_videos(names, arrays.__getitem__, "random", seed=3)
    assert all(v != c for v, c in random_contexts.items())
    assert random_contexts == choose_context_videos(names, arrays.__getitem__, "random", seed=3)


def test_donors_never_come_from_the_same_source_video():
    """QVHighlights vids are segments "<YouTube id>_<start>_<end>": the neighbouring segment of the same YouTube video
    (here nearly identical features) is never the donor, by similarity or at random; Charades ids stand alone."""
    rng = np.random.default_rng(0)
    mean, turn = rng.normal(size=(2, 7))

    def video(direction):  # 20 clips around a direction, split into two feature types (4 + 3 channels)
        clips = (direction + 0.1 * rng.normal(size=(20, 7))).astype(np.float32)
        return [clips[:, :4], clips[:, 4:]]

    arrays = {
        "ab_c-D_0.0_150.0": video(mean), "ab_c-D_150.0_300.0": video(mean),  # one YouTube video, "_" in its id
        "xyz123_30_180": video(mean + 0.8 * turn), "other0000_0_150": video(-mean),
    }
    assert source_video_id("ab_c-D_150.0_300.0") == "ab_c-D" and source_video_id("3MSZA") == "3MSZA"
    contexts = choose_context_videos(list(arrays), arrays.__getitem__, "similarity")
    assert contexts["ab_c-D_0.0_150.0"] == "xyz123_30_180" and contexts["ab_c-D_150.0_300.0"] == "xyz123_30_180"
    for seed in range(20):
        picked = choose_context_videos(list(arrays), arrays.__getitem__, "random", seed=seed)
        assert all(source_video_id(v) != source_video_id(c) for v, c in picked.items())
    with pytest.raises(TDDetrInputError, match="source videos"):
        choose_context_videos(["yt_0_150", "yt_150_300"], arrays.__getitem__, "random")


# ----------------------------------------------------------------------------------------------------------------
# Written splits (standard layout)
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture
def layout_dir(tmp_path):
    root = tmp_path / "source"
    records = [
        {"qid": 1, "query": "a", "vid": "v0", "duration": 24.0, "relevant_windows": [[4.0, 10.0]],
         "relevant_clip_ids": [2, 3, 4], "saliency_scores": [[1, 2, 3], [4, 4, 4], [0, 0, 1]]},
        {"qid": 2, "query": "b", "vid": "v0", "duration": 24.0, "relevant_windows": [[16.0, 20.0]],
         "relevant_clip_ids": [8, 9], "saliency_scores": [[2, 2, 2], [3, 3, 3]]},
        {"qid": 3, "query": "c", "vid": "v1", "duration": 20.0, "relevant_windows": [[0.0, 4.0]],
         "relevant_clip_ids": [0, 1], "saliency_scores": [[1, 1, 1], [2, 2, 2]]},
        {"qid": 4, "query": "d", "vid": "v2", "duration": 30.0, "relevant_windows": [[10.0, 14.0], [20.0, 22.0]],
         "relevant_clip_ids": [5, 6, 10], "saliency_scores": [[1, 1, 1], [2, 2, 2], [3, 3, 3]]},
    ]
    layout.write_annotations(root / "val.jsonl", records)
    for index, (vid, length) in enumerate([("v0", 12), ("v1", 10), ("v2", 15)]):
        slowfast, clip = tagged_types(index, length)
        layout.write_video_features(root / "slowfast_features", vid, slowfast)
        layout.write_video_features(root / "clip_features", vid, clip)
    for record in records:
        text = np.full((3, 4), record["qid"], np.float32)
        layout.write_text_features(root / "clip_text_features", record["qid"], text)
    return root


def _dirs(root):
    return [root / "slowfast_features", root / "clip_features"], root / "clip_text_features"


def test_write_masked_split_round_trips_through_the_layout(layout_dir, tmp_path):
    video_dirs, text_dir = _dirs(layout_dir)
    out = tmp_path / "masked"
    annotation = write_masked_split(layout_dir / "val.jsonl", video_dirs, text_dir, out, clip_length=2.0, seed=1)
    records = layout.read_annotations(annotation)
    sources = {r["qid"]: r for r in layout.read_annotations(layout_dir / "val.jsonl")}
    assert [r["vid"] for r in records] == ["v0__q1", "v0__q2", "v1__q3", "v2__q4"]
    for record in records:
        source = sources[record["qid"]]
        assert record["relevant_windows"] == source["relevant_windows"] and record["source_vid"] == source["vid"]
        original = layout.load_video_feature_types(source["vid"], video_dirs)
        masked = layout.load_video_feature_types(record["vid"], [out / "slowfast_features", out / "clip_features"])
        hidden = np.zeros(len(original[0]), dtype=bool)
        hidden[record["masked_clip_ids"]] = True
        assert hidden[source["relevant_clip_ids"]].all()
        for a, b in zip(original, masked):
            np.testing.assert_array_equal(a[~hidden], b[~hidden])
            assert (a[hidden] != b[hidden]).any(axis=1).all()
        np.testing.assert_array_equal(
            load_text_features(record["qid"], out / "clip_text_features"),
            load_text_features(record["qid"], text_dir),
        )
    again = write_masked_split(
        layout_dir / "val.jsonl", video_dirs, text_dir, tmp_path / "again", seed=1, text_files="copy"
    )
    a = layout.load_video_feature_types("v2__q4", [out / "clip_features"])[0]
    b = layout.load_video_feature_types("v2__q4", [again.parent / "clip_features"])[0]
    np.testing.assert_array_equal(a, b)  # deterministic by seed


@pytest.mark.parametrize("pairing", ["similarity", "random"])
def test_write_dynamic_context_split_round_trips_through_the_layout(layout_dir, tmp_path, pairing):
    video_dirs, text_dir = _dirs(layout_dir)
    out = tmp_path / "dynamic"
    annotation = write_dynamic_context_split(
        layout_dir / "val.jsonl", video_dirs, text_dir, out,
        clip_length=2.0, pairing=pairing, seed=2, text_files="symlink",
    )
    records = layout.read_annotations(annotation)  # validates windows against durations
    sources = {r["qid"]: r for r in layout.read_annotations(layout_dir / "val.jsonl")}
    for record in records:
        source = sources[record["qid"]]
        shift = int(round(record["moment_shift"] / 2.0))
        assert record["context_vid"] != source["vid"]
        assert record["relevant_clip_ids"] == [c + shift for c in source["relevant_clip_ids"]]
        assert record["saliency_scores"] == source["saliency_scores"]
        np.testing.assert_allclose(record["relevant_windows"], np.array(source["relevant_windows"]) + 2.0 * shift)
        original = layout.load_video_feature_types(source["vid"], video_dirs)
        new = layout.load_video_feature_types(record["vid"], [out / "slowfast_features", out / "clip_features"])
        first, last = min(source["relevant_clip_ids"]), max(source["relevant_clip_ids"]) + 1
        for a, b in zip(original, new):
            assert len(a) == len(b)
            np.testing.assert_array_equal(b[first + shift : last + shift], a[first:last])
            context = np.ones(len(b), dtype=bool)
            context[first + shift : last + shift] = False
            # every context clip comes from the context video, in temporal order
            np.testing.assert_array_equal(b[context, 0], 100 + int(record["context_vid"][1:]))
            assert (np.diff(b[context, 1]) >= 0).all()
        assert (out / "clip_text_features" / f"qid{record['qid']}.npz").is_symlink()


def test_writers_reject_splits_without_ground_truth(tmp_path, layout_dir):
    layout.write_annotations(tmp_path / "test.jsonl", [{"qid": 9, "query": "x", "vid": "v0", "duration": 24.0}])
    video_dirs, text_dir = _dirs(layout_dir)
    with pytest.raises(TDDetrInputError, match="qid 9 has no relevant_windows"):
        write_masked_split(tmp_path / "test.jsonl", video_dirs, text_dir, tmp_path / "out")
