import json
import os
import shutil

import numpy as np
import pytest
import torch

from td_detr.data.builder import MomentRetrievalBuilder, get_dataset_settings, load_moment_retrieval_dataset
from td_detr.data.layout import read_annotations, write_annotations, write_text_features, write_video_features
from td_detr.errors import TDDetrInputError

N = 5  # records per split read from the real files


def _normalised(x):
    x = x.astype(np.float32)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)


def _load_tiny(layout, cache_dir, **kwargs):
    """All splits of the ``tiny_layout`` fixture's data set."""
    kwargs = {**layout["kwargs"], **kwargs}
    return load_moment_retrieval_dataset("layout", data_dir=layout["root"], cache_dir=cache_dir, **kwargs)


def _assert_rows_match(dataset, records, with_saliency=True):
    assert dataset.num_rows == len(records)
    for row, record in zip(dataset, records):
        assert row["qid"] == record["qid"] and isinstance(row["qid"], int)
        assert row["query"] == record["query"] and row["vid"] == record["vid"]
        assert row["duration"] == record["duration"]
        assert row["relevant_windows"] == record.get("relevant_windows", [])
        if with_saliency:
            assert row["relevant_clip_ids"] == record.get("relevant_clip_ids", [])
            assert row["saliency_scores"] == record.get("saliency_scores", [])
        else:
            assert row["relevant_clip_ids"] == [] and row["saliency_scores"] == []


def test_qvhighlights_real_annotations(tmp_path, real_data_dir, feature_writer):
    qvh = real_data_dir / "qvhighlights"
    files = {
        "train": "highlight_train_release.jsonl",
        "validation": "highlight_val_release.jsonl",
        "test": "highlight_test_with_gt.jsonl",
    }
    records = {split: read_annotations(qvh / name)[:N] for split, name in files.items()}
    features = tmp_path / "features"
    # slowfast 80 rows, clip 78 rows: cut to the shortest (78); then to max_video_length 75 in the train split only
    # (evaluation rows keep every clip: the collator slides windows over longer videos); text 40 -> 32 rows.
    sizes = {"slowfast_features": 80, "clip_features": 78}
    for split_records in records.values():
        feature_writer(features, split_records, num_clips=lambda r, folder: sizes[folder], num_tokens=40)

    ds = load_moment_retrieval_dataset(
        "qvhighlights", data_dir=qvh, cache_dir=tmp_path / "cache", feature_root=features, max_samples=N
    )
    assert set(ds) == {"train", "validation", "test"}
    for split, split_records in records.items():
        _assert_rows_match(ds[split], split_records)
    assert all(len(r["relevant_windows"]) > 0 for r in ds["test"])  # test_with_gt preferred over test_release

    row = ds["validation"][0]
    vid, qid = records["validation"][0]["vid"], records["validation"][0]["qid"]
    assert isinstance(row["video_features"], torch.Tensor) and row["video_features"].dtype == torch.float32
    assert tuple(row["video_features"].shape) == (78, 8 + 4) and tuple(row["text_features"].shape) == (32, 6)
    sf = np.load(features / "slowfast_features" / f"{vid}.npz")["features"][:78]
    clip = np.load(features / "clip_features" / f"{vid}.npz")["features"][:78]
    expected = np.concatenate([_normalised(sf), _normalised(clip)], axis=1)
    np.testing.assert_allclose(row["video_features"].numpy(), expected, rtol=1e-5, atol=1e-6)
    text = np.load(features / "clip_text_features" / f"qid{qid}.npz")["last_hidden_state"][:32]
    np.testing.assert_allclose(row["text_features"].numpy(), _normalised(text), rtol=1e-5, atol=1e-6)
    assert tuple(ds["train"][0]["video_features"].shape) == (75, 8 + 4)

    settings = get_dataset_settings("qvhighlights", data_dir=qvh, cache_dir=tmp_path / "cache", feature_root=features)
    assert settings.clip_length == 2.0 and settings.max_video_length == 75 and settings.max_query_length == 32
    assert settings.video_feature_dims == (8, 4) and settings.text_feature_dim == 6
    assert settings.annotation_files["test"].endswith("highlight_test_with_gt.jsonl")


def test_qvhighlights_test_release_without_gt(tmp_path, real_data_dir, feature_writer):
    data_dir = tmp_path / "qvh"
    data_dir.mkdir()
    shutil.copy(real_data_dir / "qvhighlights" / "highlight_test_release.jsonl", data_dir)
    records = read_annotations(data_dir / "highlight_test_release.jsonl")[:3]
    feature_writer(data_dir, records)
    ds = load_moment_retrieval_dataset("qvhighlights", data_dir=data_dir, cache_dir=tmp_path / "cache", max_samples=3)
    assert list(ds) == ["test"]  # absent train/validation files are skipped for the preset configs
    _assert_rows_match(ds["test"], records)
    assert all(r["relevant_windows"] == [] for r in ds["test"])


def test_charades_real_annotations(tmp_path, real_data_dir, feature_writer):
    charades = real_data_dir / "charades_sta"
    records = {
        "train": read_annotations(charades / "charades_sta_train_tvr_format.jsonl")[:N],
        "test": read_annotations(charades / "charades_sta_test_tvr_format.jsonl")[:N],
    }
    features = tmp_path / "features"
    for split_records in records.values():  # 1-s clips, no video cap: 200 rows stay; text 120 -> 100
        feature_writer(features, split_records, num_clips=200, num_tokens=120, clip_length=1.0)
    ds = load_moment_retrieval_dataset(
        "charades_sta", data_dir=charades, cache_dir=tmp_path / "cache", feature_root=features, max_samples=N
    )
    assert set(ds) == {"train", "test"}
    for split, split_records in records.items():
        _assert_rows_match(ds[split], split_records, with_saliency=False)
    row = ds["test"][0]
    assert tuple(row["video_features"].shape) == (200, 12) and tuple(row["text_features"].shape) == (100, 6)
    assert ds["test"][0]["relevant_windows"] == [[24.3, 30.4]]  # float64: no float32 rounding of seconds
    assert get_dataset_settings("charades_sta", data_dir=charades, feature_root=features).max_video_length is None
    uncapped = get_dataset_settings("qvhighlights", data_dir=charades, feature_root=features, max_query_length=None,
                                    annotation_files={"train": "charades_sta_train_tvr_format.jsonl"})
    assert uncapped.max_query_length is None and uncapped.max_video_length == 75


def test_layout_config_and_overrides(tmp_path, tiny_layout):
    ds = _load_tiny(tiny_layout, tmp_path / "c")
    assert {split: d.num_rows for split, d in ds.items()} == {"train": 4, "validation": 2}
    _assert_rows_match(ds["train"], tiny_layout["records"]["train"])
    assert tuple(ds["train"][0]["video_features"].shape) == (10, 12)  # 20 s / 2 s, no cap by default

    capped = _load_tiny(tiny_layout, tmp_path / "c", max_video_length=6, max_query_length=3, with_saliency=False)
    row = capped["train"][0]
    assert tuple(row["video_features"].shape) == (6, 12) and tuple(row["text_features"].shape) == (3, 6)
    assert tuple(capped["validation"][0]["video_features"].shape) == (10, 12)  # evaluation rows are never cut
    assert row["saliency_scores"] == []
    assert row["relevant_windows"] == tiny_layout["records"]["train"][0]["relevant_windows"]

    row = ds["validation"][1]
    assert isinstance(row["video_features"], torch.Tensor) and row["video_features"].dtype == torch.float32
    assert isinstance(row["qid"], int) and isinstance(row["relevant_windows"], list)
    as_numpy = _load_tiny(tiny_layout, tmp_path / "c", format="numpy")["validation"][1]
    assert isinstance(as_numpy["video_features"], np.ndarray) and as_numpy["video_features"].dtype == np.float32
    np.testing.assert_array_equal(as_numpy["video_features"], row["video_features"].numpy())

    raw = _load_tiny(tiny_layout, tmp_path / "c", format=None)
    assert isinstance(raw["train"][0]["video_features"], list)


def test_layout_described_by_dataset_info(tmp_path, tiny_layout):
    info = {"splits": {"train": "train.jsonl"}, "clip_length": 2.0, "max_video_length": 7}
    (tiny_layout["root"] / "dataset_info.json").write_text(json.dumps(info))
    ds = load_moment_retrieval_dataset(tiny_layout["root"], cache_dir=tmp_path / "c")  # a folder = layout config
    assert list(ds) == ["train"] and tuple(ds["train"][0]["video_features"].shape) == (7, 12)


TRAIN = {"train": "train.jsonl"}


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"annotation_files": TRAIN}, "positive clip_length"),
        ({"clip_length": 2.0}, "needs annotation_files"),
        ({"clip_length": "2", "annotation_files": TRAIN}, "positive clip_length"),
        ({"clip_length": 2.0, "annotation_files": TRAIN, "max_samples": 1.5}, "max_samples must be an int"),
        ({"clip_length": 2.0, "annotation_files": {"train": "nope.jsonl"}}, "split 'train' not found"),
        ({"clip_length": 2.0, "annotation_files": TRAIN, "colour": 1}, "unknown data set option"),
        ({"clip_length": 2.0, "annotation_files": TRAIN, "text_feature_dir": "nope"}, "feature folder not found"),
    ],
)
def test_bad_layout_arguments(tmp_path, tiny_layout, kwargs, fragment):
    with pytest.raises(TDDetrInputError, match=fragment):
        load_moment_retrieval_dataset("layout", data_dir=tiny_layout["root"], cache_dir=tmp_path / "c", **kwargs)


def test_foreign_dataset_info_is_rejected(tmp_path, tiny_layout):
    (tiny_layout["root"] / "dataset_info.json").write_text(json.dumps({"splits": {"train": {"num_bytes": 1}}}))
    with pytest.raises(TDDetrInputError, match="not a valid layout description"):
        load_moment_retrieval_dataset(tiny_layout["root"], cache_dir=tmp_path / "c")


def test_unknown_config_name(tmp_path):
    with pytest.raises(TDDetrInputError, match="neither a data set config"):
        load_moment_retrieval_dataset("qvh", cache_dir=tmp_path)


def _builder(layout, cache_dir):
    return MomentRetrievalBuilder("layout", data_dir=layout["root"], cache_dir=cache_dir, **layout["kwargs"])


def test_cache_follows_edited_annotations(tmp_path, tiny_layout, monkeypatch):
    cache = tmp_path / "cache"
    first = _load_tiny(tiny_layout, cache)
    assert first["train"][0]["query"] == "a person does thing number 0"
    cache_dir_before = _builder(tiny_layout, cache).cache_dir

    # Unchanged inputs: same cache folder, nothing regenerated.
    def no_generation(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(MomentRetrievalBuilder, "_generate_examples", no_generation)
        again = _load_tiny(tiny_layout, cache)
    assert again["train"][0]["query"] == "a person does thing number 0"

    # Same-size edit with the old mtime restored: the content hash still changes the cache key.
    path = tiny_layout["files"]["train"]
    stat = os.stat(path)
    path.write_text(path.read_text().replace("thing number 0", "thing NUMBER 0"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size
    edited = _load_tiny(tiny_layout, cache)
    assert edited["train"][0]["query"] == "a person does thing NUMBER 0"
    assert _builder(tiny_layout, cache).cache_dir != cache_dir_before

    # Dropping a record changes the row count.
    write_annotations(path, read_annotations(path)[1:])
    assert _load_tiny(tiny_layout, cache)["train"].num_rows == 3


def test_cache_follows_rewritten_features(tmp_path, tiny_layout):
    cache = tmp_path / "cache"
    vid = tiny_layout["records"]["train"][0]["vid"]
    before = _load_tiny(tiny_layout, cache)
    write_video_features(tiny_layout["root"] / "slowfast_features", vid, np.ones((10, 8)))
    after = _load_tiny(tiny_layout, cache)
    assert not torch.equal(before["train"][0]["video_features"], after["train"][0]["video_features"])
    np.testing.assert_allclose(after["train"][0]["video_features"][:, :8].numpy(), 1 / (np.sqrt(8) + 1e-5), rtol=1e-5)


def _cache_leftovers(cache):
    names = (".incomplete", ".arrow", "dataset_info.json")
    return [p for p in cache.rglob("*") if p.name.endswith(names)]


def test_missing_feature_file_raises_and_leaves_no_partial_cache(tmp_path, tiny_layout):
    cache = tmp_path / "cache"
    record = tiny_layout["records"]["validation"][1]
    missing = tiny_layout["root"] / "clip_features" / f"{record['vid']}.npz"
    saved = np.load(missing)["features"]
    missing.unlink()
    with pytest.raises(TDDetrInputError) as info:
        _load_tiny(tiny_layout, cache)
    message = str(info.value)
    assert f"qid {record['qid']}" in message and record["vid"] in message and str(missing) in message
    assert "validation split" in message
    assert _cache_leftovers(cache) == []

    write_video_features(missing.parent, record["vid"], saved)
    ds = _load_tiny(tiny_layout, cache)
    assert ds["validation"].num_rows == 2


def test_feature_size_mismatch_names_both_files(tmp_path, tiny_layout):
    vid = tiny_layout["records"]["train"][2]["vid"]
    bad = write_video_features(tiny_layout["root"] / "slowfast_features", vid, np.ones((10, 9)))
    with pytest.raises(TDDetrInputError) as info:
        _load_tiny(tiny_layout, tmp_path / "c")
    message = str(info.value)
    reference = sorted((tiny_layout["root"] / "slowfast_features").glob("*.npz"))[0]
    assert str(bad) in message and str(reference) in message and "9 columns" in message and "has 8" in message


def test_text_feature_size_mismatch_and_nan(tmp_path, tiny_layout):
    qid = tiny_layout["records"]["train"][1]["qid"]
    write_text_features(tiny_layout["root"] / "clip_text_features", qid, np.ones((3, 5)))
    with pytest.raises(TDDetrInputError, match=rf"qid {qid}.*qid{qid}.npz has 5 columns"):
        _load_tiny(tiny_layout, tmp_path / "c")
    text = np.ones((3, 6))
    text[0, 0] = np.nan
    path = write_text_features(tiny_layout["root"] / "clip_text_features", qid, text)
    with pytest.raises(TDDetrInputError, match="NaN or inf") as info:
        _load_tiny(tiny_layout, tmp_path / "c")
    assert str(path) in str(info.value)


def test_malformed_annotation_through_builder(tmp_path, tiny_layout):
    path = tiny_layout["files"]["train"]
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TDDetrInputError, match=rf"{path}, line 3: invalid JSON"):
        _load_tiny(tiny_layout, tmp_path / "c")
