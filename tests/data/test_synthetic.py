import json

import numpy as np
import pytest

from td_detr.cli import main
from td_detr.data.builder import get_dataset_settings, load_moment_retrieval_dataset
from td_detr.data.layout import load_video_feature_types, read_annotations
from td_detr.data.synthetic import (
    ACTION_WORDS,
    CUE_CLIPS,
    FAR_GAP,
    SyntheticWorld,
    ensure_synthetic_dataset,
    write_synthetic_dataset,
)
from td_detr.errors import TDDetrInputError

ACTIONS = [pair[0] for pair in ACTION_WORDS]


@pytest.fixture(scope="module")
def default_data(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("syn") / "default", seed=5, size=80)


@pytest.fixture(scope="module")
def spurious_data(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("syn") / "spurious", seed=5, size=60, preset="spurious")


def _clips(window):
    return range(int(window[0] // 2), int(window[1] // 2))


def _sf(folder, vid):
    """Raw 64-d features of a synthetic video, cut to the shared length."""
    return load_video_feature_types(vid, [folder / "slowfast_features", folder / "clip_features"])[0]


def test_deterministic_by_seed(tmp_path):
    a = write_synthetic_dataset(tmp_path / "a", seed=3, size=8)
    b = write_synthetic_dataset(tmp_path / "b", seed=3, size=8)
    c = write_synthetic_dataset(tmp_path / "c", seed=4, size=8)
    for split in ("train", "validation", "test"):
        assert (a / f"{split}.jsonl").read_text() == (b / f"{split}.jsonl").read_text()
        assert (a / f"{split}.jsonl").read_text() != (c / f"{split}.jsonl").read_text()
    files = sorted(p.relative_to(a) for p in a.rglob("*.npz"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.npz")) and len(files) == 3 * (8 + 2 + 2)
    for name in files:
        with np.load(a / name) as x, np.load(b / name) as y:
            for key in x.files:
                np.testing.assert_array_equal(x[key], y[key])
    with np.load(a / files[0]) as x, np.load(c / files[0]) as z:
        assert not np.array_equal(x[x.files[0]], z[z.files[0]])


def test_readable_by_the_layout_builder(tmp_path, default_data):
    info = json.loads((default_data / "dataset_info.json").read_text())
    assert info["splits"] == {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}
    assert (default_data / "README.md").read_text().count(".jsonl") == 3
    ds = load_moment_retrieval_dataset(default_data, cache_dir=tmp_path)
    assert {split: d.num_rows for split, d in ds.items()} == {"train": 80, "validation": 20, "test": 20}
    settings = get_dataset_settings(default_data)
    assert settings.clip_length == 2.0 and settings.video_feature_dims == (64, 32) and settings.text_feature_dim == 32
    records = read_annotations(default_data / "test.jsonl")
    for row, record in zip(ds["test"], records):
        assert row["relevant_windows"] == record["relevant_windows"]
        assert row["saliency_scores"] == record["saliency_scores"]
        assert row["video_features"].shape == (record["duration"] / 2, 96)  # the extra trailing row is cut
        assert 6 <= row["text_features"].shape[0] <= 9  # SOT + 4-7 words + EOT


def test_moment_buckets_windows_and_lengths(default_data):
    records = read_annotations(default_data / "train.jsonl")
    lengths = [ed - st for r in records for st, ed in r["relevant_windows"]]
    assert any(0 < n <= 10 for n in lengths) and any(10 < n <= 30 for n in lengths) and any(n > 30 for n in lengths)
    assert any(len(r["relevant_windows"]) > 1 for r in records)
    assert {r["duration"] for r in records} <= set(range(60, 151, 2))
    splits = ("train", "validation", "test")
    qids = [r["qid"] for split in splits for r in read_annotations(default_data / f"{split}.jsonl")]
    assert len(set(qids)) == len(qids)
    for r in records:
        assert all(st % 2 == 0 and ed % 2 == 0 for st, ed in r["relevant_windows"])
        tokens = r["query"].split()
        assert 4 <= len(tokens) <= 7 and any(word in tokens for word in ACTION_WORDS[ACTIONS.index(r["action"])])


def test_saliency_consistent_with_windows(default_data):
    centre, edge = [], []
    for r in read_annotations(default_data / "train.jsonl"):
        assert r["relevant_clip_ids"] == [c for w in r["relevant_windows"] for c in _clips(w)]
        scores = np.array(r["saliency_scores"])
        assert scores.shape == (len(r["relevant_clip_ids"]), 3) and scores.min() >= 0 and scores.max() <= 4
        offset = 0
        for w in r["relevant_windows"]:
            n = len(_clips(w))
            if n >= 5:
                centre.append(scores[offset + n // 2].mean())
                edge.append(scores[[offset, offset + n - 1]].mean())
            offset += n
    assert np.mean(centre) > np.mean(edge) + 1.0


def test_moments_carry_the_query_action_signature(default_data):
    world = SyntheticWorld.from_seed(5)
    inside, outside = [], []
    for r in read_annotations(default_data / "train.jsonl")[:40]:
        projection = _sf(default_data, r["vid"]) @ world.action_signatures[0][ACTIONS.index(r["action"])]
        mask = np.zeros(len(projection), bool)
        mask[r["relevant_clip_ids"]] = True
        inside.append(projection[mask].mean())
        outside.append(projection[~mask].mean())
    assert np.mean(inside) > np.mean(outside) + 0.5
    assert np.mean(np.array(inside) > np.array(outside)) > 0.9


def test_spurious_splits_and_cue_placement(spurious_data):
    info = json.loads((spurious_data / "dataset_info.json").read_text())
    assert set(info["splits"]) == {"train", "validation", "test", "validation_iid", "validation_no_cue"}
    world = SyntheticWorld.from_seed(5)
    placements = {
        "train": "adjacent",
        "validation_iid": "adjacent",
        "validation": "far",
        "test": "far",
        "validation_no_cue": "none",
    }
    cue = 2 * CUE_CLIPS  # seconds
    for split, placement in placements.items():
        cue_strength, other_strength = [], []
        for r in read_annotations(spurious_data / f"{split}.jsonl"):
            assert r["cue_placement"] == placement
            cues, windows, decoys = r["cue_windows"], r["relevant_windows"], r["decoy_windows"]
            if placement == "adjacent":  # two cue blocks bracket every window
                assert cues == sorted(c for st, ed in windows for c in ([st - cue, st], [ed, ed + cue]))
                assert decoys == []
            elif placement == "far":  # the two cue blocks bracket a decoy far from every window
                assert len(decoys) == len(windows)
                assert cues == sorted(c for st, ed in decoys for c in ([st - cue, st], [ed, ed + cue]))
                for (st, ed), (d_st, d_ed) in zip(windows, decoys):
                    assert d_ed - d_st == min(ed - st, 20)
                for c in cues:
                    assert all(max(w[0] - c[1], c[0] - w[1]) >= 2 * FAR_GAP for w in windows)
            else:
                assert cues == [] and decoys == []
            projection = _sf(spurious_data, r["vid"]) @ world.cue_signatures[0][ACTIONS.index(r["action"])]
            mask = np.zeros(len(projection), bool)
            for c in cues:
                mask[list(_clips(c))] = True
            cue_strength += projection[mask].tolist()
            other_strength += projection[~mask].tolist()
        if placement == "none":
            assert np.mean(other_strength) < 0.2
        else:
            assert np.mean(cue_strength) > np.mean(other_strength) + 1.0


def test_make_synthetic_cli(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["make-synthetic", str(out), "--size", "4", "--seed", "1"]) == 0
    assert "wrote synthetic data set" in capsys.readouterr().out
    assert len(read_annotations(out / "train.jsonl")) == 4 and len(read_annotations(out / "test.jsonl")) == 1
    assert main(["make-synthetic", str(out), "--size", "4"]) == 2  # not empty: refused
    assert "not empty" in capsys.readouterr().err
    assert main(["make-synthetic", str(out), "--size", "6", "--preset", "spurious", "--overwrite"]) == 0
    assert json.loads((out / "dataset_info.json").read_text())["preset"] == "spurious"
    assert not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main(["make-synthetic", str(foreign), "--overwrite"]) == 2
    assert (foreign / "keep.txt").read_text() == "mine"
    with pytest.raises(TDDetrInputError, match="unknown synthetic preset"):
        write_synthetic_dataset(tmp_path / "x", preset="weird")


def test_ensure_synthetic_dataset_reuses_matching_data(tmp_path):
    out = ensure_synthetic_dataset(tmp_path / "d", seed=2, size=4)
    stamp = (out / "train.jsonl").stat().st_mtime_ns
    assert ensure_synthetic_dataset(out, seed=2, size=4) == out
    assert (out / "train.jsonl").stat().st_mtime_ns == stamp
    ensure_synthetic_dataset(out, seed=3, size=4)
    assert json.loads((out / "dataset_info.json").read_text())["seed"] == 3
