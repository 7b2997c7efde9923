import json

import numpy as np
import pytest

from td_detr.data.layout import (
    load_video_feature_types,
    read_annotations,
    write_annotations,
    write_text_features,
    write_video_features,
)
from td_detr.errors import TDDetrInputError
from td_detr.processing_td_detr import load_text_features, load_video_features


def _normalised(x):
    return x / (np.sqrt((x.astype(np.float64) ** 2).sum(1, keepdims=True)) + 1e-5)


# -- annotations ---------------------------------------------------------------------------------------------------


def test_annotations_round_trip_and_blank_lines(tmp_path, make_records):
    records = make_records(3)
    path = tmp_path / "a.jsonl"
    write_annotations(path, records)
    path.write_text(path.read_text() + "\n\n")  # trailing blank lines are ignored
    assert read_annotations(path) == records


def test_real_annotation_files_read_every_record(real_data_dir):
    files = sorted(real_data_dir.glob("*/*.jsonl"))
    assert len(files) == 6
    for path in files:
        records = read_annotations(path)
        assert [r["qid"] for r in records] == [json.loads(line)["qid"] for line in path.read_text().splitlines()]
    # Charades windows that end exactly at the duration are accepted (18 of the 100 train lines do).
    charades = read_annotations(real_data_dir / "charades_sta/charades_sta_train_tvr_format.jsonl")
    assert sum(r["relevant_windows"][0][1] == r["duration"] for r in charades) == 18


def _write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = {"qid": 1, "query": "q", "vid": "v", "duration": 10.0, "relevant_windows": [[0, 10.0]]}


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ('{"qid": 2, "query": "q", "vid": "v", "duration": 10', "invalid JSON"),
        (json.dumps({"qid": 2, "query": "q", "duration": 10}), "missing field 'vid'"),
        (json.dumps({"qid": "2", "query": "q", "vid": "v", "duration": 10}), "'qid' must be an int"),
        (json.dumps({**GOOD, "qid": 2, "duration": -1}), "'duration' must be a positive"),
        (json.dumps({**GOOD, "qid": 2, "relevant_windows": [[4, 4]]}), "empty or reversed"),
        (json.dumps({**GOOD, "qid": 2, "relevant_windows": [[6, 2]]}), "empty or reversed"),
        (json.dumps({**GOOD, "qid": 2, "relevant_windows": [[2, 10.5]]}), "outside the video [0, 10.0]"),
        (json.dumps({**GOOD, "qid": 2, "relevant_windows": [[-2, 4]]}), "outside the video"),
        (json.dumps({**GOOD, "qid": 2, "relevant_windows": [[1, 2, 3]]}), "not a [start, end] pair"),
        (json.dumps({**GOOD, "qid": 2, "relevant_clip_ids": [0, 1], "saliency_scores": [[1, 1, 1]]}), "one entry per"),
        (json.dumps({**GOOD, "qid": 2, "relevant_clip_ids": [0], "saliency_scores": [[1, 5, 1]]}), "3 ints in 0..4"),
        (json.dumps({**GOOD, "qid": 2, "relevant_clip_ids": [-1]}), "non-negative ints"),
        (json.dumps(GOOD), "duplicate qid (first seen on line 1)"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_annotation_lines_name_file_and_line(tmp_path, bad, fragment):
    path = _write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD), bad])
    with pytest.raises(TDDetrInputError) as info:
        read_annotations(path)
    message = str(info.value)
    assert f"{path}, line 2" in message
    assert fragment in message


def test_bad_window_error_names_qid(tmp_path):
    path = _write_lines(tmp_path / "bad.jsonl", [json.dumps({**GOOD, "qid": 77, "relevant_windows": [[3, 1]]})])
    with pytest.raises(TDDetrInputError, match=r"line 1 \(qid 77\)"):
        read_annotations(path)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(TDDetrInputError, match="annotation file not found"):
        read_annotations(tmp_path / "nope.jsonl")


def test_window_end_equal_to_float_duration_is_fine(tmp_path):
    record = {"qid": 1, "query": "q", "vid": "v", "duration": 30.96, "relevant_windows": [[24.3, 30.96]]}
    path = _write_lines(tmp_path / "ok.jsonl", [json.dumps(record)])
    assert read_annotations(path)[0]["relevant_windows"] == [[24.3, 30.96]]


# -- features ------------------------------------------------------------------------------------------------------


def test_video_features_normalised_per_type_cut_to_shortest_and_concatenated(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((10, 5)) * 7.0  # very different scales: per-type normalisation equalises them
    b = rng.standard_normal((9, 3)) * 0.01
    write_video_features(tmp_path / "sf", "v1", a)
    write_video_features(tmp_path / "clip", "v1", b)
    dirs = [tmp_path / "sf", tmp_path / "clip"]

    raw = load_video_feature_types("v1", dirs)
    assert [r.shape for r in raw] == [(9, 5), (9, 3)]
    assert all(r.dtype == np.float32 for r in raw)
    np.testing.assert_array_equal(raw[0], a[:9].astype(np.float32))

    video = load_video_features("v1", dirs)
    assert video.shape == (9, 8) and video.dtype == np.float32
    expected = np.concatenate([_normalised(a[:9].astype(np.float32)), _normalised(b[:9].astype(np.float32))], axis=1)
    np.testing.assert_allclose(video, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(video[:, :5], axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(video[:, 5:], axis=1), 1.0, atol=2e-3)  # eps matters at norm 0.01

    capped = load_video_features("v1", dirs, max_length=4)
    np.testing.assert_allclose(capped, expected[:4], rtol=1e-5, atol=1e-6)
    assert load_video_features("v1", dirs, max_length=-1).shape == (9, 8)  # negative = no cap


def test_npy_fallback_and_npz_preferred(tmp_path):
    folder = tmp_path / "sf"
    folder.mkdir()
    np.save(folder / "v1.npy", np.ones((3, 2), np.float32))
    assert load_video_feature_types("v1", [folder])[0].shape == (3, 2)
    write_video_features(folder, "v1", np.ones((4, 2)))
    assert load_video_feature_types("v1", [folder])[0].shape == (4, 2)


def test_missing_video_feature_names_vid_and_paths(tmp_path):
    (tmp_path / "sf").mkdir()
    with pytest.raises(TDDetrInputError) as info:
        load_video_features("abc", [tmp_path / "sf"])
    message = str(info.value)
    assert "'abc'" in message and str(tmp_path / "sf" / "abc.npz") in message and "abc.npy" in message


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_features_name_the_file(tmp_path, bad_value):
    array = np.ones((4, 3))
    array[2, 1] = bad_value
    path = write_video_features(tmp_path / "sf", "v1", array)
    with pytest.raises(TDDetrInputError, match="NaN or inf") as info:
        load_video_features("v1", [tmp_path / "sf"])
    assert str(path) in str(info.value)


def test_bad_feature_files(tmp_path):
    folder = tmp_path / "sf"
    folder.mkdir()
    np.savez(folder / "wrongkey.npz", other=np.ones((2, 2)))
    with pytest.raises(TDDetrInputError, match="no array named 'features'.*other"):
        load_video_features("wrongkey", [folder])
    np.savez(folder / "flat.npz", features=np.ones(5))
    with pytest.raises(TDDetrInputError, match=r"flat.npz: expected a non-empty 2-D array.*\(5,\)"):
        load_video_features("flat", [folder])
    (folder / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TDDetrInputError, match="junk.npz: cannot read"):
        load_video_features("junk", [folder])


def test_text_features_cut_and_normalised(tmp_path):
    text = np.random.default_rng(1).standard_normal((40, 6)) * 3
    write_text_features(tmp_path / "txt", 12, text)
    loaded = load_text_features(12, tmp_path / "txt", max_length=32)
    assert loaded.shape == (32, 6) and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, _normalised(text[:32].astype(np.float32)), rtol=1e-5, atol=1e-6)
    assert load_text_features(12, tmp_path / "txt").shape == (40, 6)
    with pytest.raises(TDDetrInputError, match=r"qid 13 .*qid13.npz"):
        load_text_features(13, tmp_path / "txt")
