"""A run folder belongs to one run (issue 12 §2): no training over another run, resume only the same run, one
process per folder, incomplete checkpoints skipped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from td_detr.cli import main
from td_detr.run_folder import LOCK_FILE, RUN_FILE

from training_utils import read_json

SRC = Path(__file__).resolve().parents[2] / "src"


def train_command(workspace, output, *extra):
    root, data, config = workspace
    return ["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), "--batch-size", "8",
            "--save-steps", "1", "--output-dir", str(output), "--cache-dir", str(root / "cache"), *extra]


@pytest.fixture(scope="module")
def finished_run(workspace):
    output = workspace[0] / "finished"
    assert main(train_command(workspace, output, "--max-steps", "2")) == 0
    return output


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_into_another_run_refuses_and_keeps_everything(workspace, finished_run, tmp_path, capsys):
    before = snapshot(finished_run)
    assert main(train_command(workspace, finished_run, "--max-steps", "1", "--seed", "3")) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--resume" in error and "--overwrite" in error
    assert snapshot(finished_run) == before


def test_overwrite_replaces_the_run(workspace, tmp_path):
    output = tmp_path / "replaced"
    assert main(train_command(workspace, output, "--max-steps", "2")) == 0
    assert main(train_command(workspace, output, "--max-steps", "1", "--seed", "7", "--overwrite")) == 0
    assert read_json(output / RUN_FILE)["run"]["seed"] == 7
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["checkpoint-1"]  # old ones removed


def test_resume_refuses_a_different_run(workspace, finished_run, capsys):
    before = snapshot(finished_run)
    assert main(train_command(workspace, finished_run, "--max-steps", "3", "--resume", "--seed", "9")) == 2
    error = capsys.readouterr().err
    assert "different run" in error and "seed" in error
    assert main(train_command(workspace, finished_run, "--max-steps", "3", "--resume", "--lr", "0.5")) == 2
    assert "learning_rate" in capsys.readouterr().err
    assert main(train_command(workspace, finished_run, "--max-steps", "3", "--resume", "--lr-drop", "7")) == 2
    assert "lr_drop_epochs" in capsys.readouterr().err
    assert snapshot(finished_run) == before


def test_resume_refuses_a_checkpoint_of_another_run(workspace, finished_run, tmp_path, capsys):
    output = tmp_path / "seed5"
    assert main(train_command(workspace, output, "--max-steps", "1", "--seed", "5")) == 0
    foreign = finished_run / "checkpoints" / "checkpoint-2"
    assert main(train_command(workspace, output, "--max-steps", "2", "--seed", "5", "--resume", str(foreign))) == 2
    assert "different run" in capsys.readouterr().err


def test_resume_skips_an_incomplete_checkpoint_and_matches_an_uninterrupted_run(workspace, finished_run, tmp_path,
                                                                                 capsys):
    """A kill while the Trainer writes checkpoint-2 leaves it without run.json (written last) and with a cut file:
    --resume warns, keeps it aside, resumes from checkpoint-1 and ends with the uninterrupted run's weights."""
    output = tmp_path / "killed"
    assert main(train_command(workspace, output, "--max-steps", "2")) == 0
    for name in ("model.safetensors", "config.json", "metrics.json", "predictions.jsonl", "README.md"):
        (output / name).unlink()  # the kill came before the end of training
    broken = output / "checkpoints" / "checkpoint-2"
    (broken / RUN_FILE).unlink()
    optimizer = broken / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    capsys.readouterr()
    assert main(train_command(workspace, output, "--max-steps", "2", "--resume")) == 0
    assert "checkpoint-2 is incomplete" in capsys.readouterr().err
    assert (output / "checkpoints" / "incomplete-checkpoint-2" / "optimizer.pt").stat().st_size == 100
    assert read_json(output / "checkpoints" / "checkpoint-2" / "trainer_state.json")["global_step"] == 2
    resumed, uninterrupted = load_file(output / "model.safetensors"), load_file(finished_run / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all((resumed[key] == uninterrupted[key]).all() for key in resumed)


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding the folder's lock (as a running `td-detr train` does)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from td_detr.run_folder import RunLock; "
         f"lock = RunLock({str(folder)!r}); lock.acquire(); print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.slow  # a second Python process holds the lock
def test_a_second_train_into_a_busy_folder_exits_2_naming_the_first(workspace, tmp_path, capsys):
    output = tmp_path / "busy"
    output.mkdir()
    holder = hold_lock(output)
    try:
        assert main(train_command(workspace, output, "--max-steps", "1")) == 2
        assert f"PID {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert not (output / RUN_FILE).exists()


@pytest.mark.slow  # a second Python process holds the lock
def test_the_lock_of_a_killed_process_is_reclaimed(workspace, tmp_path):
    output = tmp_path / "stale"
    output.mkdir()
    holder = hold_lock(output)
    holder.kill()  # SIGKILL: no clean-up runs, the lock file with its PID stays behind
    holder.wait()
    assert (output / LOCK_FILE).read_text() == str(holder.pid)
    assert main(train_command(workspace, output, "--max-steps", "1")) == 0
    assert (output / "model.safetensors").is_file() and not (output / LOCK_FILE).exists()


def test_unwritable_or_impossible_output_dir_exits_2_before_any_work(workspace, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(train_command(workspace, blocker / "run", "--max-steps", "1")) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(train_command(workspace, blocker, "--max-steps", "1")) == 2
    assert "not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"
