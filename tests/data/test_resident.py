"""Resident training features (`--features-on-device`): the collator reading videos from a device store builds the
same batches as from the rows (the random draws are CPU-generated), the store matches the split, a training run with
it ends with the same weights, and on CUDA the device batch equals the CPU one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from td_detr.data.collator import DataCollatorForMomentRetrieval
from td_detr.data.resident import ResidentVideoFeatures
from td_detr.errors import TDDetrInputError

SETTINGS = {
    "paper": dict(),
    "official": dict(synthesis_sampling="fixed_count", synthesis_similarity="top50", synthesis_keep_originals=True,
                     synthesis_cap_length=False),
    "random pairing": dict(synthesis_pairing="random", synthesis_part_order="random"),
}


def make_rows(count=12, videos=9, seed=0, dim=10):
    """Rows over `videos` videos (some shared by two queries), lengths 6-16 clips, 1-2 windows each."""
    rng = np.random.default_rng(seed)
    features = {f"v{v}": rng.standard_normal((int(rng.integers(6, 17)), dim)).astype(np.float32) for v in range(videos)}
    rows = []
    for qid in range(count):
        vid = f"v{qid % videos}"
        clips = len(features[vid])
        start = int(rng.integers(0, clips - 3))
        end = start + int(rng.integers(1, 4))
        windows = [[2.0 * start, 2.0 * end]] + ([[2.0 * (clips - 1), 2.0 * clips]] if qid % 3 == 0 and end < clips - 1
                                                else [])
        clip_ids = sorted({c for s, e in windows for c in range(int(s // 2), int(e // 2))})
        rows.append(dict(qid=qid, vid=vid, query=f"q{qid}", duration=2.0 * clips, video_features=features[vid],
                         text_features=rng.standard_normal((int(rng.integers(2, 6)), 5)).astype(np.float32),
                         relevant_windows=windows, relevant_clip_ids=clip_ids,
                         saliency_scores=rng.integers(0, 5, (len(clip_ids), 3)).tolist()))
    return rows, features


def without_video(rows):
    return [{key: value for key, value in row.items() if key != "video_features"} for row in rows]


def assert_same_batch(expected: dict, actual: dict):
    assert expected.keys() == actual.keys()
    for name in ("video_features", "video_mask", "text_features", "text_mask", "negative_text_index"):
        torch.testing.assert_close(actual[name].cpu(), expected[name], rtol=0, atol=0, msg=name)
    assert actual["meta"] == expected["meta"]
    assert len(actual["labels"]) == len(expected["labels"])
    for mine, theirs in zip(actual["labels"], expected["labels"]):
        assert mine.keys() == theirs.keys()
        for name in mine:
            torch.testing.assert_close(mine[name], theirs[name], rtol=0, atol=0)


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_resident_store_gives_the_batches_the_rows_give(setting):
    rows, features = make_rows()
    store = ResidentVideoFeatures.from_arrays(features, "cpu")
    plain = DataCollatorForMomentRetrieval(training=True, clip_length=2.0, seed=3, **SETTINGS[setting])
    resident = DataCollatorForMomentRetrieval(training=True, clip_length=2.0, seed=3, resident=store,
                                              **SETTINGS[setting])
    for start in (0, 4):  # two different batches (different draws), one of 8 rows, one of 8 others
        batch = rows[start : start + 8]
        expected, actual = plain(batch), resident(without_video(batch))
        assert any(entry["synthetic"] for entry in expected["meta"])  # the synthesizer did run
        assert_same_batch(expected, actual)


@pytest.mark.parametrize("method", ["mean", "top50"])
def test_similarity_of_a_tensor_equals_that_of_the_same_numpy_array(method):
    from td_detr.data.synthesis import video_similarity

    rng = np.random.default_rng(2)
    features = rng.standard_normal((5, 7, 6)).astype(np.float32)
    features[1, 4:] = 0  # padding
    lengths, rows = np.array([7, 4, 7, 7, 7]), np.array([3, 0])
    expected = video_similarity(features, lengths, rows, method)
    actual = video_similarity(torch.from_numpy(features), lengths, rows, method)
    assert actual.dtype == np.float64 and actual.shape == (2, 5)
    np.testing.assert_array_equal(actual, expected)


def test_store_holds_each_video_once_zero_padded_and_refuses_unknown_or_bad_videos():
    _, features = make_rows()
    store = ResidentVideoFeatures.from_arrays(features)
    longest = max(len(array) for array in features.values())
    assert store.features.shape == (len(features), longest, 10)
    for vid, array in features.items():
        row = store.index[vid]
        np.testing.assert_array_equal(store.features[row, : len(array)].numpy(), array)
        assert store.features[row, len(array):].abs().sum() == 0 and store.lengths[row] == len(array)
    with pytest.raises(TDDetrInputError, match="vid nope is not among the resident"):
        store.rows(["v1", "nope"])
    with pytest.raises(TDDetrInputError, match="NaN or inf"):
        ResidentVideoFeatures.from_arrays({"a": np.full((3, 2), np.nan, dtype=np.float32)})
    with pytest.raises(TDDetrInputError, match="widths differ"):
        ResidentVideoFeatures.from_arrays({"a": np.ones((3, 2)), "b": np.ones((3, 4))})
    with pytest.raises(ValueError, match="training collator only"):
        DataCollatorForMomentRetrieval(training=False, resident=store)


def test_store_from_a_loaded_split_equals_its_rows(tmp_path):
    from td_detr.data import load_moment_retrieval_dataset

    from training_utils import make_tiny_synthetic

    data = make_tiny_synthetic(tmp_path / "data", size=24)
    split = load_moment_retrieval_dataset(data, cache_dir=str(tmp_path / "cache"))["train"]
    store = ResidentVideoFeatures.from_split(split)
    for row in split:
        np.testing.assert_array_equal(store.features[store.index[row["vid"]], : len(row["video_features"])].numpy(),
                                      row["video_features"].numpy())
    lean = split.with_transform(split.format["format_kwargs"]["transform"].without_video())
    assert "video_features" not in lean[0] and torch.equal(lean[0]["text_features"], split[0]["text_features"])


def test_training_with_features_on_device_ends_with_the_same_weights(tmp_path):
    """On the CPU the resident path computes exactly what the row path computes: same batches, same weights."""
    from safetensors.torch import load_file

    from td_detr.cli import main

    from training_utils import make_tiny_synthetic, write_tiny_config

    data, config = make_tiny_synthetic(tmp_path / "data", size=24), write_tiny_config(tmp_path / "tiny.json")
    weights = {}
    for name, extra in (("rows", []), ("resident", ["--features-on-device"])):
        output = tmp_path / name
        assert main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), "--max-steps",
                     "3", "--batch-size", "8", "--output-dir", str(output), "--cache-dir", str(tmp_path / "cache"),
                     "--device", "cpu", *extra]) == 0
        weights[name] = load_file(output / "model.safetensors")
    assert weights["rows"].keys() == weights["resident"].keys()
    for key, value in weights["rows"].items():
        torch.testing.assert_close(weights["resident"][key], value, rtol=0, atol=0, msg=key)


@pytest.mark.cuda
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_on_cuda_the_device_batch_equals_the_cpu_batch(setting):
    rows, features = make_rows(count=16, dim=64)
    plain = DataCollatorForMomentRetrieval(training=True, clip_length=2.0, seed=5, **SETTINGS[setting])
    store = ResidentVideoFeatures.from_arrays(features, "cuda")
    resident = DataCollatorForMomentRetrieval(training=True, clip_length=2.0, seed=5, resident=store,
                                              **SETTINGS[setting])
    actual = resident(without_video(rows))
    assert actual["video_features"].device.type == "cuda"
    assert_same_batch(plain(rows), actual)
