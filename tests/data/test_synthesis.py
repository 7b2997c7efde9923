"""Video synthesizer: Eq. 1 scores, partner choice, moment blocks and synthesized batches (through the collator)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_detr import TDDetrConfig
from td_detr.data.collator import DataCollatorForMomentRetrieval
from td_detr.data.synthesis import (
    VideoSynthesizer,
    choose_partners,
    clip_unit_vectors,
    moment_blocks,
    most_similar_by_eq1,
    video_similarity,
)
from td_detr.errors import TDDetrInputError

CLIP = 2.0


def tagged_row(qid, length, windows, rng, vid=None, dim=6, with_saliency=True):
    """A row whose clip features name their origin: column 0 = qid + 1, column 1 = clip index (rest random)."""
    video = rng.uniform(0.1, 1.0, (length, dim)).astype(np.float32)
    video[:, 0] = qid + 1
    video[:, 1] = np.arange(length)
    clip_ids = sorted({c for st_, ed in windows for c in range(int(st_ // CLIP), int(np.ceil(ed / CLIP)))})
    return {
        "qid": qid,
        "query": f"query {qid}",
        "vid": vid or f"vid{qid}",
        "duration": length * CLIP,
        "video_features": video,
        "text_features": np.full((3 + qid % 2, 4), qid, dtype=np.float32),
        "relevant_windows": [list(w) for w in windows],
        "relevant_clip_ids": clip_ids if with_saliency else [],
        "saliency_scores": rng.integers(0, 5, (len(clip_ids), 3)).tolist() if with_saliency else [],
    }


def random_rows(seed, batch, min_length=4, max_length=20, shared_vid=False):
    rng = np.random.default_rng(seed)
    rows = []
    for qid in range(batch):
        length = int(rng.integers(min_length, max_length + 1))
        windows = []
        for _ in range(int(rng.integers(1, 3))):
            start = int(rng.integers(0, length))
            end = int(rng.integers(start + 1, min(length, start + 5) + 1))
            windows.append((start * CLIP, end * CLIP))
        vid = "same" if shared_vid and qid < 2 else None
        rows.append(tagged_row(qid, length, sorted(windows), rng, vid=vid))
    return rows


def decode(batch, out):
    """(row qid, clip index) of every valid clip of output ``out``."""
    length = int(batch["video_mask"][out].sum())
    features = batch["video_features"][out, :length].numpy()
    return features[:, 0].round().astype(int) - 1, features[:, 1].round().astype(int)


def brute_force_eq1(features, lengths):
    units = clip_unit_vectors(features)
    n = len(lengths)
    scores = np.zeros((n, n))
    for j in range(n):
        for l in range(n):
            total = sum(
                float(units[j, p] @ units[l, q]) for p in range(lengths[j]) for q in range(lengths[l]) if p != q
            )
            scores[j, l] = total / (lengths[j] * lengths[l])
    return scores


def padded_random(seed, batch, max_length, dim, min_length=1):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, batch)
    features = np.zeros((batch, max_length, dim), dtype=np.float32)
    for b, length in enumerate(lengths):
        features[b, :length] = rng.standard_normal((length, dim))
    return features, lengths


# ----------------------------------------------------------------------------------------------------------------
# Eq. 1 and partner choice
# ----------------------------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), batch=st.integers(2, 5), max_length=st.integers(1, 7), dim=st.integers(1, 5))
def test_fast_similarity_equals_literal_double_sum(seed, batch, max_length, dim):
    features, lengths = padded_random(seed, batch, max_length, dim)
    fast = video_similarity(features, lengths)
    np.testing.assert_allclose(fast, brute_force_eq1(features, lengths), atol=1e-5)
    rows = np.array([batch - 1, 0])
    np.testing.assert_allclose(video_similarity(features, lengths, rows), fast[rows], atol=1e-6)


def test_similarity_uses_the_full_vector_cosine():
    # Scaling a clip (or one feature type of every clip by the same factor per clip) does not change the cosine of the
    # full vector, so the score is unchanged.
    features, lengths = padded_random(3, 4, 5, 6)
    scaled = features * np.random.default_rng(0).uniform(0.5, 3.0, features.shape[:2])[..., None]
    np.testing.assert_allclose(video_similarity(scaled, lengths), video_similarity(features, lengths), atol=1e-5)


def test_top50_is_the_mean_of_the_50_largest_clip_pair_cosines():
    features, lengths = padded_random(5, 4, 9, 5)
    units = clip_unit_vectors(features)
    expected = np.zeros((4, 4))
    for j in range(4):
        for l in range(4):
            pairs = (units[j] @ units[l].T).ravel()  # padding included, as the official matrix
            expected[j, l] = np.sort(pairs)[-50:].sum() / 50
    np.testing.assert_allclose(video_similarity(features, lengths, method="top50"), expected, atol=1e-5)


def test_partners_are_the_eq1_argmax_without_self_or_same_video():
    features, lengths = padded_random(11, 6, 6, 4)
    scores = brute_force_eq1(features, lengths)
    vids = np.array(["a", "a", "b", "c", "d", "e"], dtype=object)
    valid = vids[:, None] != vids[None, :]
    partners = choose_partners(video_similarity(features, lengths), valid, "similarity", np.random.default_rng(0))
    expected = np.argmax(np.where(valid, scores, -np.inf), axis=1)
    np.testing.assert_array_equal(partners, expected)
    assert (vids[partners] != vids).all()

    random_partners = choose_partners(None, valid, "random", np.random.default_rng(0))
    assert (vids[random_partners] != vids).all()
    no_candidates = choose_partners(None, np.zeros((2, 6), dtype=bool), "random", np.random.default_rng(0))
    np.testing.assert_array_equal(no_candidates, [-1, -1])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), count=st.integers(2, 9))
def test_dataset_level_argmax_matches_the_exact_matrix(seed, count):
    features, lengths = padded_random(seed, count, 6, 3, min_length=2)  # one-clip videos all score 0: ties
    units = clip_unit_vectors(features)
    exact = brute_force_eq1(features, lengths)
    np.fill_diagonal(exact, -np.inf)
    partners = most_similar_by_eq1(units.sum(axis=1), lengths, lambda j, l: float(np.sum(units[j] * units[l])))
    np.testing.assert_array_equal(partners, np.argmax(exact, axis=1))


# ----------------------------------------------------------------------------------------------------------------
# Moment blocks
# ----------------------------------------------------------------------------------------------------------------


def test_moment_blocks_hand_computed():
    windows = [
        np.array([[4.0, 10.0], [20.0, 22.0]]),  # clips 2..4 and 10 -> block 2..10, gap included
        np.array([[3.4, 7.3]]),  # fractional: clips 1..3 with 2-s clips (7.3 s lies in clip 3)
        np.array([[0.0, 2.0]]),
        np.array([[140.0, 150.0]]),  # past the end of a 72-clip (144 s) video: cut to clips 70..71
        np.array([[146.0, 150.0]]),  # wholly past it: clamped to the last clip
    ]
    none = np.array([], dtype=int)
    clip_ids = [np.array([2, 3, 4, 10]), none, np.array([5]), none, none]
    start, end = moment_blocks(windows, clip_ids, np.array([75, 75, 75, 72, 72]), CLIP)
    np.testing.assert_array_equal(start, [2, 1, 0, 70, 71])
    np.testing.assert_array_equal(end, [11, 4, 6, 72, 72])


# ----------------------------------------------------------------------------------------------------------------
# Synthesized batches
# ----------------------------------------------------------------------------------------------------------------

synthesis_settings = st.fixed_dictionaries(
    {
        "synthesis_pairing": st.sampled_from(["similarity", "random"]),
        "synthesis_alpha": st.sampled_from([0.0, 0.3, 0.7, 1.0]),
        "synthesis_length_jitter": st.sampled_from([0.0, 0.2, 0.5]),
        "synthesis_sampling": st.sampled_from(["bernoulli", "fixed_count"]),
        "synthesis_keep_originals": st.booleans(),
        "synthesis_part_order": st.sampled_from(["pair", "moment_first", "random"]),
        "synthesis_cap_length": st.booleans(),
        "max_video_length": st.sampled_from([None, 12, 25]),
    }
)


def _rows_by_qid(rows):
    return {row["qid"]: row for row in rows}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), batch=st.integers(2, 6), options=synthesis_settings)
def test_synthesized_samples_keep_the_moment_and_remap_its_labels(seed, batch, options):
    rows = random_rows(seed, batch, shared_vid=seed % 3 == 0)
    collator = DataCollatorForMomentRetrieval(training=True, clip_length=CLIP, seed=seed, **options)
    out = collator(rows)
    by_qid = _rows_by_qid(rows)
    jitter = options["synthesis_length_jitter"]
    cap = options["max_video_length"] if options["synthesis_cap_length"] else None
    synthetic = [i for i, m in enumerate(out["meta"]) if m["synthetic"]]
    originals = [i for i, m in enumerate(out["meta"]) if not m["synthetic"]]

    assert synthetic or (batch == 2 and seed % 3 == 0)  # only two rows of one video cannot be paired
    # Batch size: every row is an original or an anchor with two outputs.
    assert len(originals) + len(synthetic) == out["video_features"].shape[0] == len(out["labels"])
    if len(synthetic):
        paired_anchors = len(synthetic) // 2
        assert len(originals) == batch - paired_anchors
        if options["synthesis_keep_originals"]:
            assert paired_anchors == int(np.floor(batch * 0.5 + 0.5)) or seed % 3 == 0  # shared vids may lack partners

    for i in originals:
        row = by_qid[out["meta"][i]["qid"]]
        length = len(row["video_features"])
        assert int(out["video_mask"][i].sum()) == length
        np.testing.assert_array_equal(out["video_features"][i, :length].numpy(), row["video_features"])

    for i in synthetic:
        meta = out["meta"][i]
        row, context = by_qid[meta["qid"]], by_qid[meta["context_qid"]]
        assert row["vid"] != context["vid"]
        sources, clips = decode(out, i)
        length = len(sources)
        shift = int(round(meta["moment_shift"] / CLIP))
        windows = np.array(row["relevant_windows"])
        ids = np.array(row["relevant_clip_ids"])
        (start,), (end,) = moment_blocks([windows], [ids], [len(row["video_features"])], CLIP)

        # The moment block: intact, contiguous, in order, exactly once.
        np.testing.assert_array_equal(sources[start + shift : end + shift], meta["qid"])
        np.testing.assert_array_equal(clips[start + shift : end + shift], np.arange(start, end))
        own = sources == meta["qid"]
        in_block = own & (clips >= start) & (clips < end)
        assert in_block.sum() == end - start
        # Windows, clip ids and saliency move with it.
        np.testing.assert_allclose(meta["relevant_windows"], windows + shift * CLIP)
        for st_, ed in meta["relevant_windows"]:
            covered = np.arange(int(st_ // CLIP), int(np.ceil(ed / CLIP)))
            np.testing.assert_array_equal(clips[covered], covered - shift)
        saliency = out["labels"][i]["saliency_all_labels"].numpy()
        assert saliency.shape == (length,)
        summed = np.array(row["saliency_scores"]).sum(axis=1)
        np.testing.assert_array_equal(saliency[np.array(row["relevant_clip_ids"]) + shift], summed)
        assert saliency.sum() == summed.sum()
        assert meta["duration"] == length * CLIP
        # Only the two videos, each part in temporal order, at most two copies of a clip.
        assert set(sources) <= {meta["qid"], meta["context_qid"]}
        assert (np.diff(sources) != 0).sum() <= 1
        for part in (own, ~own):
            assert (np.diff(clips[part]) >= 0).all()
            assert np.bincount(clips[part]).max(initial=0) <= 2
        # Lengths within the jitter bounds (and the cap, which never cuts the moment).
        own_context = int(own.sum()) - (end - start)
        other = int((~own).sum())
        context_size = len(row["video_features"]) - (end - start)
        other_size = len(context["video_features"])
        assert own_context <= context_size + np.floor(context_size * jitter)
        assert other <= other_size + np.floor(other_size * jitter)
        if cap is not None:
            assert length <= max(cap, end - start)
        elif options["synthesis_sampling"] == "fixed_count":
            for count, size, share in ((own_context, context_size, options["synthesis_alpha"]),
                                       (other, other_size, 1 - options["synthesis_alpha"])):
                wanted = int(np.floor(share * size + 1e-9))
                wanted = wanted if wanted > 2 else 0
                assert np.floor(wanted * (1 - jitter)) <= count <= wanted + np.floor(wanted * jitter)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), batch=st.integers(2, 6), pairing=st.sampled_from(["similarity", "random"]),
       order=st.sampled_from(["pair", "moment_first", "random"]))
def test_alpha_one_without_jitter_reproduces_the_originals(seed, batch, pairing, order):
    rows = random_rows(seed, batch)
    collator = DataCollatorForMomentRetrieval(
        training=True, clip_length=CLIP, synthesis_alpha=1.0, synthesis_length_jitter=0.0, synthesis_pairing=pairing,
        synthesis_part_order=order, max_video_length=None, seed=seed,
    )
    out = collator(rows)
    by_qid = _rows_by_qid(rows)
    for i, meta in enumerate(out["meta"]):
        row = by_qid[meta["qid"]]
        length = len(row["video_features"])
        assert int(out["video_mask"][i].sum()) == length
        np.testing.assert_array_equal(out["video_features"][i, :length].numpy(), row["video_features"])
        np.testing.assert_allclose(meta["relevant_windows"], row["relevant_windows"])


def test_pairing_none_is_the_identity():
    rows = random_rows(4, 5)
    train = DataCollatorForMomentRetrieval(training=True, synthesis_pairing="none", clip_length=CLIP, seed=1)(rows)
    evaluation = DataCollatorForMomentRetrieval(training=False, clip_length=CLIP, seed=1)(rows)
    for key in ("video_features", "video_mask", "text_features", "text_mask"):
        assert train[key].equal(evaluation[key])
    assert [m["qid"] for m in train["meta"]] == list(range(5))
    assert not any(m["synthetic"] for m in train["meta"])


def test_draws_depend_on_the_seed_and_the_batch_only():
    """Same seed and batch → the same synthesis, whatever came before (so a resumed run repeats an uninterrupted
    one); another seed or another order of rows → other draws."""
    rows = random_rows(7, 6)

    def run(seed, batch):
        collator = DataCollatorForMomentRetrieval(training=True, clip_length=CLIP, seed=seed)
        collator(random_rows(11, 6))  # an unrelated earlier batch must not matter
        return collator(batch)

    def same(a, b):
        return a["video_features"].equal(b["video_features"]) and a["meta"] == b["meta"] and all(
            all(la[k].equal(lb[k]) for k in la) for la, lb in zip(a["labels"], b["labels"])
        )

    first = run(3, rows)
    assert same(first, run(3, rows))
    assert not same(first, run(4, rows))
    assert not same(first, run(3, rows[::-1]))


def test_batch_size_rules():
    rows = random_rows(9, 8)
    keep = DataCollatorForMomentRetrieval(training=True, clip_length=CLIP, synthesis_keep_originals=True, seed=0)(rows)
    assert len(keep["meta"]) == 12  # 4 originals + 4 anchors x 2 (official ~1.5 x B)
    assert sum(m["synthetic"] for m in keep["meta"]) == 8
    replace = DataCollatorForMomentRetrieval(training=True, clip_length=CLIP, seed=0)(rows)  # the default
    assert len(replace["meta"]) == 16 and all(m["synthetic"] for m in replace["meta"])  # paper: 2 x B
    # Ṽ_i outputs come first, their Ṽ_k partners after all of them.
    anchors = [(m["qid"], m["context_qid"]) for m in replace["meta"][:8]]
    assert [(m["context_qid"], m["qid"]) for m in replace["meta"][8:]] == anchors


@pytest.mark.parametrize("keep_originals", [True, False])
@pytest.mark.parametrize("batch", [1, 2, 5, 8, 9])
def test_rows_per_batch_counts_what_the_collator_builds(keep_originals, batch):
    # scripts/ablation_plan.py sizes the equal-samples runs with it: it must be the collator's actual row count.
    rows = random_rows(batch, batch)
    collator = DataCollatorForMomentRetrieval(training=True, clip_length=CLIP, synthesis_keep_originals=keep_originals,
                                              seed=0)
    config = TDDetrConfig(synthesis_keep_originals=keep_originals)
    assert VideoSynthesizer.from_config(config).rows_per_batch(batch) == len(collator(rows)["meta"])
    config.synthesis_pairing = "none"
    assert VideoSynthesizer.from_config(config).rows_per_batch(batch) == batch


def test_rows_of_one_video_are_never_partners_and_lone_rows_stay_original():
    rng = np.random.default_rng(0)
    rows = [tagged_row(q, 8, [(2.0, 6.0)], rng, vid="one") for q in range(3)]
    out = DataCollatorForMomentRetrieval(training=True, clip_length=CLIP, synthesis_keep_originals=False, seed=0)(rows)
    assert len(out["meta"]) == 3 and not any(m["synthetic"] for m in out["meta"])


def test_synthesis_settings_are_validated_once_by_the_config():
    """The collator's settings are TDDetrConfig fields: one validation, one exception type (TDDetrInputError, a
    ValueError), and the synthesizer is the config's."""
    for field, value in [("synthesis_sampling", "uniform"), ("synthesis_alpha", 1.5), ("synthesis_length_jitter", 2.0),
                         ("synthesis_part_order", "shuffled"), ("pseudo_label_clip", "seconds")]:
        with pytest.raises(TDDetrInputError, match=field):
            DataCollatorForMomentRetrieval(training=True, **{field: value})
        with pytest.raises(TDDetrInputError, match=field):
            TDDetrConfig(**{field: value})
    with pytest.raises(TDDetrInputError, match="unknown collator setting"):
        DataCollatorForMomentRetrieval(synthesis_alpah=0.5)
    config = TDDetrConfig(synthesis_sampling="fixed_count", synthesis_cap_length=False, max_video_length=20)
    assert VideoSynthesizer.from_config(config) == DataCollatorForMomentRetrieval.from_config(config, True).synthesizer
    assert VideoSynthesizer.from_config(config).max_length is None
