"""Every bad input is one line naming the file / line / qid / flag and exit code 2 (issue 12 §3): annotation and
feature files, training flags, saved weights and configs."""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from td_detr import TDDetrForMomentRetrieval
from td_detr.cli import main
from td_detr.errors import TDDetrInputError


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    lines = [line for line in error.splitlines() if line.startswith("td-detr")]
    assert len(lines) == 1 and "Traceback" not in error, error
    return lines[0]


def train_custom(workspace, train_file: Path, tmp_path, *extra) -> int:
    root, data, config = workspace
    return main(["train", "--train-file", str(train_file), "--video-feature-dir", str(data / "slowfast_features"),
                 "--video-feature-dir", str(data / "clip_features"), "--text-feature-dir",
                 str(data / "clip_text_features"), "--clip-length", "2", "--config", str(config), "--max-steps", "1",
                 "--output-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), *extra])


def train_records(workspace, count=4):
    _, data, _ = workspace
    return [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()[:count]]


def write_lines(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


# -- annotation files -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, expected", [
    (b"", "no annotations"),
    (b"\n   \n\t\n", "no annotations"),
    ('{"qid": 1, "query": "caf\u00e9", "vid": "v", "duration": 10.0}\n'.encode("latin-1"), "line 1: not UTF-8"),
    (gzip.compress(b'{"qid": 1}\n'), "line 1: not UTF-8"),  # a compressed file given as JSONL
])
def test_empty_blank_latin1_or_binary_annotation_file_exits_2(workspace, tmp_path, capsys, content, expected):
    train_file = tmp_path / "train.jsonl"
    train_file.write_bytes(content)
    assert train_custom(workspace, train_file, tmp_path) == 2
    line = one_line_error(capsys)
    assert expected in line and str(train_file) in line
    assert not (tmp_path / "run").exists()


def test_training_file_without_windows_exits_2_naming_the_qids(workspace, tmp_path, capsys):
    records = train_records(workspace)
    for record in records:
        for key in ("relevant_windows", "relevant_clip_ids", "saliency_scores"):
            record.pop(key)
    train_file = write_lines(tmp_path / "train.jsonl", records)
    assert train_custom(workspace, train_file, tmp_path) == 2
    line = one_line_error(capsys)
    assert "4 of 4 training queries have no relevant_windows" in line and str(records[0]["qid"]) in line


def test_relevant_clip_ids_past_the_video_exit_2(workspace, tmp_path, capsys):
    records = train_records(workspace)
    bad = records[2]
    past = int(np.ceil(bad["duration"] / 2.0))  # the first id after the last clip
    bad["relevant_clip_ids"][-1] = past
    train_file = write_lines(tmp_path / "train.jsonl", records)
    assert train_custom(workspace, train_file, tmp_path) == 2
    line = one_line_error(capsys)
    assert f"line 3 (qid {bad['qid']})" in line and f"relevant_clip_ids [{past}] lie past the video" in line


def test_features_whose_norm_overflows_exit_2(workspace, tmp_path, capsys):
    _, data, _ = workspace
    features = tmp_path / "features"
    shutil.copytree(data / "clip_features", features)
    records = train_records(workspace)
    path = features / f"{records[0]['vid']}.npz"
    array = np.load(path)["features"].copy()
    array[1] = 1e20  # finite in float32, but its squared norm is not: the row would be normalised to zeros
    np.savez(path, features=array)
    root, data, config = workspace
    code = main(["train", "--train-file", str(write_lines(tmp_path / "train.jsonl", records)),
                 "--video-feature-dir", str(data / "slowfast_features"), "--video-feature-dir", str(features),
                 "--text-feature-dir", str(data / "clip_text_features"), "--clip-length", "2", "--config",
                 str(config), "--max-steps", "1", "--output-dir", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    line = one_line_error(capsys)
    assert str(path) in line and "norm of row 1 overflows" in line


def test_a_make_synthetic_folder_without_dataset_flag_trains_the_synthetic_setup(workspace, tmp_path, capsys):
    _, data, _ = workspace
    output = tmp_path / "run"
    assert main(["train", "--data-dir", str(data), "--max-steps", "1", "--max-samples", "8", "--output-dir",
                 str(output), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert " on synthetic " in capsys.readouterr().out
    config = json.loads((output / "config.json").read_text())
    assert config["hidden_size"] == 64  # the synthetic demo model, not the 14 M QVHighlights one
    assert json.loads((output / "run.json").read_text())["run"]["data"]["name"] == "synthetic"


# -- training flags ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value", [
    ("--epochs", "0"), ("--epochs", "-2"), ("--batch-size", "0"), ("--lr", "nan"), ("--lr", "inf"),
    ("--save-steps", "0"), ("--threads", "-4"), ("--max-steps", "0"), ("--row-chunk-size", "0"),
])
def test_impossible_training_flags_exit_2_before_any_work(workspace, tmp_path, capsys, flag, value):
    _, data, config = workspace
    output = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), flag, value,
                 "--output-dir", str(output)]) == 2
    assert f"{flag} must be a positive number" in one_line_error(capsys)
    assert not output.exists()


# -- saved models -----------------------------------------------------------------------------------------------------
def broken_copy(trained: Path, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(trained, folder, ignore=shutil.ignore_patterns("checkpoints"))
    return folder


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbled"])
def test_unreadable_weights_exit_2_and_are_never_pushed(workspace, trained, tmp_path, capsys, damage):
    root, data, _ = workspace
    folder = broken_copy(trained, tmp_path, damage)
    weights = folder / "model.safetensors"
    content = weights.read_bytes()
    weights.write_bytes({"empty": b"", "truncated": content[: len(content) // 2],
                         "garbled": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))}[damage])
    assert main(["evaluate", "--model", str(folder), "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(tmp_path / "eval"), "--cache-dir", str(root / "cache")]) == 2
    assert "not a readable safetensors file" in one_line_error(capsys)
    assert not (tmp_path / "eval").exists()
    # push checks the weights before talking to the Hub (no Hub is running here: an upload attempt would exit 1)
    assert main(["push", "--model", str(folder), "--repo-id", "org/never"]) == 2
    line = one_line_error(capsys)
    assert str(weights) in line and "not a readable safetensors file" in line


def test_weights_missing_or_adding_a_tensor_are_refused(trained, tmp_path, capsys):
    tensors = load_file(trained / "model.safetensors")
    missing = broken_copy(trained, tmp_path, "missing")
    dropped = sorted(tensors)[5]
    save_file({k: v for k, v in tensors.items() if k != dropped}, missing / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(TDDetrInputError, match=f"1 tensor\\(s\\) missing: {dropped}"):
        TDDetrForMomentRetrieval.from_pretrained(missing)
    extra = broken_copy(trained, tmp_path, "extra")
    save_file({**tensors, "head.extra": tensors[dropped].clone()}, extra / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(TDDetrInputError, match="1 unexpected: head.extra"):
        TDDetrForMomentRetrieval.from_pretrained(extra)
    assert main(["predict", "--model", str(missing), "--video-features", "x.npz", "--text-features", "y.npz"]) == 2
    assert dropped in one_line_error(capsys)


@pytest.mark.parametrize("change, expected", [
    ({"hidden_size": "16"}, "expected int, got str"),
    ({"use_tef": "yes"}, "expected bool, got str"),
    ({"num_queries": -1}, "num_queries=-1 must be at least 1"),
    ({"ffn_dim": 8}, "of another shape than config.json says"),
    ({"model_type": "bert"}, "model_type is 'bert': not td-detr"),
])
def test_config_json_with_wrong_types_or_sizes_exits_2(workspace, trained, tmp_path, capsys, change, expected):
    root, data, _ = workspace
    folder = broken_copy(trained, tmp_path, "config")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    assert main(["evaluate", "--model", str(folder), "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(tmp_path / "eval"), "--cache-dir", str(root / "cache")]) == 2
    line = one_line_error(capsys)
    assert expected in line and str(folder) in line


def test_from_pretrained_refuses_another_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 16,
                                                      "num_attention_heads": 2, "vocab_size": 10}))
    with pytest.raises(TDDetrInputError, match="model_type is 'bert'"):
        TDDetrForMomentRetrieval.from_pretrained(tmp_path)
