"""Outputs never overwrite inputs or runs, and are checked before any work (issue 12 §2): score, evaluate, convert,
make-synthetic, unwritable folders."""

import json
import os
import shutil
import subprocess

import pytest

from td_detr.cli import main

from training_utils import read_json


def evaluate_into(workspace, output, model) -> int:
    root, data, _ = workspace
    return main(["evaluate", "--model", str(model), "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(output), "--cache-dir", str(root / "cache")])


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder nobody may write into. Tests run as root here, and root ignores permission bits, so for root the
    folder is made immutable (chattr +i, which stops root too); other users get mode 0o555."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("running as root without a working chattr +i: no way to make a folder unwritable")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        with pytest.raises(OSError):
            (folder / "probe").write_text("x")
        yield folder
    finally:
        subprocess.run(undo, check=True)


def test_score_refuses_to_overwrite_its_predictions(workspace, trained, capsys):
    root, data, _ = workspace
    model = trained
    predictions = model / "predictions.jsonl"
    before = predictions.read_bytes()
    assert main(["score", "--predictions", str(predictions), "--ground-truth", str(data / "validation.jsonl"),
                 "--output", str(predictions)]) == 2
    assert "--output" in capsys.readouterr().err and predictions.read_bytes() == before
    assert main(["score", "--predictions", str(predictions), "--ground-truth", str(data / "validation.jsonl"),
                 "--output", str(data / "validation.jsonl")]) == 2
    assert "--ground-truth" in capsys.readouterr().err


def test_evaluate_refuses_the_model_folder_before_predicting(workspace, trained, capsys):
    model = trained
    before = {name: (model / name).read_bytes() for name in ("metrics.json", "predictions.jsonl")}
    assert evaluate_into(workspace, model, model) == 2
    error = capsys.readouterr().err
    assert "holds a saved model" in error and str(model / "eval") in error
    assert {name: (model / name).read_bytes() for name in before} == before


def test_evaluate_checks_its_output_before_loading_anything(workspace, trained, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    # the model does not exist either: the output check comes first, so that is not what is reported
    assert evaluate_into(workspace, blocker / "eval", tmp_path / "no-model") == 2
    assert "cannot be created" in capsys.readouterr().err
    assert evaluate_into(workspace, blocker, trained) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_plot_paths_are_checked_before_loading_the_model(workspace, tmp_path, capsys):
    root, data, _ = workspace
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    missing_model = tmp_path / "no-model"  # never reached: the plot path is checked first
    assert main(["predict", "--model", str(missing_model), "--video-features", "v.npz", "--text-features", "t.npz",
                 "--plot", str(blocker / "plot.png")]) == 2
    assert f"--plot {blocker / 'plot.png'}: cannot be created, {blocker} is a file" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(missing_model), "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(tmp_path / "eval"), "--plot", str(tmp_path)]) == 2
    assert "--plot" in capsys.readouterr().err and not (tmp_path / "eval").exists()


def test_unwritable_output_folders_exit_2(workspace, trained, unwritable_dir, capsys):
    root, data, _ = workspace
    assert evaluate_into(workspace, unwritable_dir / "eval", trained) == 2
    assert "is not writable" in capsys.readouterr().err
    assert main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--output-dir",
                 str(unwritable_dir / "run")]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert main(["make-synthetic", str(unwritable_dir / "data")]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert main(["score", "--predictions", str(trained / "predictions.jsonl"), "--ground-truth",
                 str(data / "validation.jsonl"), "--output", str(unwritable_dir / "m.json")]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert list(unwritable_dir.iterdir()) == []


def test_convert_into_a_non_empty_folder_needs_overwrite(tmp_path, capsys):
    output = tmp_path / "converted"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    # checked before the checkpoint is read: a missing checkpoint is not what is reported
    assert main(["convert", str(tmp_path / "model_best.ckpt"), "--from", "qd-detr", "--output-dir", str(output)]) == 2
    error = capsys.readouterr().err
    assert "is not empty" in error and "--overwrite" in error
    assert main(["convert", str(tmp_path / "model_best.ckpt"), "--from", "qd-detr", "--output-dir", str(output),
                 "--overwrite"]) == 2
    assert "is not empty" not in capsys.readouterr().err  # past the folder check, the missing checkpoint is next
    assert (output / "notes.txt").read_text() == "mine"


def test_make_synthetic_overwrite_deletes_only_what_it_generated(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["make-synthetic", str(data), "--size", "8"]) == 0
    run = data / "runs" / "mine"
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"weights")
    (data / "clip_features" / "notes.txt").write_text("mine")
    assert main(["make-synthetic", str(data), "--size", "12", "--overwrite"]) == 2
    error = capsys.readouterr().err
    assert "clip_features/notes.txt" in error and "runs/" in error
    assert (run / "model.safetensors").read_bytes() == b"weights"
    assert read_json(data / "dataset_info.json")["size"] == 8
    shutil.rmtree(data / "runs")
    (data / "clip_features" / "notes.txt").unlink()
    assert main(["make-synthetic", str(data), "--size", "12", "--overwrite"]) == 0
    assert json.loads((data / "dataset_info.json").read_text())["size"] == 12
