"""`td-detr train` output: where data and cache are, one aligned line per epoch, the closing table naming the kept epoch and the selection
split, the held-out test split scored after selection, no Trainer dicts or shard bars; --report-to tensorboard."""

from __future__ import annotations

import re

import pytest

from td_detr.cli import main

from training_utils import make_tiny_synthetic, read_json, write_tiny_config

NUMBER = r"(-|\d+\.\d\d)"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return root, make_tiny_synthetic(root / "data", size=24), write_tiny_config(root / "tiny.json")


def train(run, output, *extra):
    root, data, config = run
    return main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), "--batch-size",
                 "8", "--output-dir", str(output), "--cache-dir", str(root / "cache"), *extra])


def test_one_line_per_epoch_and_a_closing_table(run, tmp_path, capsys):
    output = tmp_path / "run"
    assert train(run, output, "--epochs", "3") == 0
    captured = capsys.readouterr()
    out = captured.out
    assert re.search(r"epoch\s+loss\s+R1@0\.5\s+R1@0\.7\s+mAP\s+best MR-full-mAP \(validation\)", out)
    lines = re.findall(rf"^\s+(\d)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+(\d+\.\d\d) \(epoch (\d)\)$",
                       out.replace("\r", "\n"), flags=re.M)
    assert [int(line[0]) for line in lines] == [1, 2, 3]
    maps = [float(line[4]) for line in lines]
    bests = [float(line[5]) for line in lines]
    assert bests == [max(maps[: i + 1]) for i in range(3)]  # "best so far"
    kept = int(lines[-1][6])
    assert maps[kept - 1] == bests[-1]
    assert "{'loss'" not in out and "'eval_" not in out
    # the banner says where the data is read from and where the prepared copy goes
    assert f"data: {run[1]}; prepared features cached in {run[0] / 'cache'} (--cache-dir)" in out
    assert "Writing model shards" not in captured.err + out

    selection = re.search(rf"^validation\s+chose epoch {kept}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$", out, flags=re.M)
    held_out = re.search(rf"^test\s+held out: the number to report\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$", out, flags=re.M)
    assert selection and held_out
    metrics, test_metrics = read_json(output / "metrics.json"), read_json(output / "test_metrics.json")
    assert float(selection.group(3)) == metrics["brief"]["MR-full-mAP"] == bests[-1]
    assert test_metrics["split"] == "test" and float(held_out.group(3)) == test_metrics["brief"]["MR-full-mAP"]

    # the held-out numbers are those of the kept model on the test split, as `td-detr evaluate` computes them
    root = run[0]
    assert main(["evaluate", "--model", str(output), "--dataset", "synthetic", "--data-dir", str(run[1]),
                 "--eval-split", "test", "--output-dir", str(tmp_path / "eval"), "--cache-dir", str(root / "cache")]) == 0
    assert read_json(tmp_path / "eval" / "metrics.json")["brief"] == test_metrics["brief"]


def test_report_to_tensorboard_writes_events(run, tmp_path):
    output = tmp_path / "tb"
    assert train(run, output, "--max-steps", "2", "--report-to", "tensorboard") == 0
    assert list((output / "checkpoints" / "runs").rglob("events.out.tfevents.*"))


def test_report_to_tensorboard_without_the_package_exits_2(run, tmp_path, monkeypatch, capsys):
    import transformers.integrations

    monkeypatch.setattr(transformers.integrations, "is_tensorboard_available", lambda: False)
    assert train(run, tmp_path / "never", "--report-to", "tensorboard") == 2
    assert "pip install 'td-detr[tensorboard]'" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_until_converged_stops_a_flat_run_at_a_fifth_without_improvement(run, tmp_path, capsys):
    # At a learning rate too small to change any prediction the selection metric is flat: the best (first) epoch is
    # 1, so the run stops at the 10th evaluation (the minimum), far below the 40-epoch cap.
    output = tmp_path / "converged"
    assert train(run, output, "--epochs", "40", "--lr", "1e-12", "--until-converged") == 0
    out = capsys.readouterr().out
    assert "convergence: best epoch 1 of 10 (10 evaluations); stopped: no improvement for a fifth of the run" in out
    state = read_json(sorted((output / "checkpoints").glob("checkpoint-*/trainer_state.json"))[-1])
    assert state["global_step"] == 10 * 3  # 24 queries / batch 8
