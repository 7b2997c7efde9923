"""`td-detr train / evaluate / predict` end to end on tiny data, and their errors (exit code 2, no traceback)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from td_detr.cli import main

from training_utils import read_json

REPO = Path(__file__).resolve().parents[2]


def test_train_saves_a_loadable_model_with_metrics_and_card(trained, capsys):
    for name in ("model.safetensors", "config.json", "metrics.json", "predictions.jsonl", "README.md"):
        assert (trained / name).exists(), name
    metrics = read_json(trained / "metrics.json")
    assert set(metrics["brief"]) >= {"MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "HL-min-VeryGood-mAP"}
    config = read_json(trained / "config.json")
    assert config["model_type"] == "td_detr" and config["hidden_size"] == 16
    assert config["video_feature_size"] == 96 and config["text_feature_size"] == 32  # read from the data files
    card = (trained / "README.md").read_text()
    assert "td-detr" in card and str(metrics["brief"]["MR-full-mAP"]) in card


def test_evaluate_writes_submission_and_metrics_equal_to_score(trained, workspace, tmp_path, capsys):
    root, data, _ = workspace
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(trained), "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(out), "--cache-dir", str(root / "cache")]) == 0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 6 and all(len(r["pred_relevant_windows"]) == 4 for r in records)
    assert "mAP avg" in capsys.readouterr().out
    # The training run evaluated the same weights on the same split: identical numbers.
    assert read_json(out / "metrics.json")["brief"] == read_json(trained / "metrics.json")["brief"]
    scored = tmp_path / "scored.json"
    assert main(["score", "--predictions", str(out / "predictions.jsonl"),
                 "--ground-truth", str(data / "validation.jsonl"), "--output", str(scored)]) == 0
    assert read_json(scored)["brief"] == read_json(out / "metrics.json")["brief"]


def test_predict_prints_ranked_windows(trained, workspace, capsys):
    _, data, _ = workspace
    record = json.loads((data / "validation.jsonl").read_text().splitlines()[0])
    video = [str(data / folder / f"{record['vid']}.npz") for folder in ("slowfast_features", "clip_features")]
    text = str(data / "clip_text_features" / f"qid{record['qid']}.npz")
    assert main(["predict", "--model", str(trained), "--video-features", *video, "--text-features", text, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    clips = len(np.load(video[0])["features"])
    assert len(result["pred_saliency_scores"]) == clips
    scores = [w[2] for w in result["pred_relevant_windows"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= w[0] <= w[1] <= clips * 2.0 for w in result["pred_relevant_windows"])


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["train", "--data-dir", "/no/such/folder"], "not a folder"),
        (["train", "--dataset", "qvhighlights"], "needs --data-dir"),
        (["train", "--train-file", "x.jsonl"], "--video-feature-dir"),
        (["evaluate", "--model", "/no/such/model", "--output-dir", "x"], "cannot load"),
        (["train", "--lr-drop", "0"], "--lr-drop 0"),
        (["train", "--until-converged", "--min-improvement", "-0.5"], "--min-improvement -0.5"),
    ],
)
def test_bad_input_exits_2_with_a_message(arguments, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository root, where the README's main job leaves td-detr-runs/synthetic
    assert main(arguments) == 2
    assert message in capsys.readouterr().err


def test_a_bad_flag_is_named_before_the_run_folder_is_looked_at(capsys, tmp_path):
    """A folder holding another run must not hide a bad flag: the flag is the error, and the folder is untouched."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main(["train", "--lr-drop", "0", "--output-dir", str(run)]) == 2
    assert "--lr-drop 0" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]


def test_unknown_flag_and_wrong_model_type_exit_2(trained, workspace, tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        main(["train", "--no-such-flag"])
    assert error.value.code == 2
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert main(["evaluate", "--model", str(other), "--output-dir", str(tmp_path / "e")]) == 2
    assert "not td-detr" in capsys.readouterr().err


def test_features_of_the_wrong_size_exit_2(trained, tmp_path, capsys):
    video = tmp_path / "v.npz"
    text = tmp_path / "qid1.npz"
    np.savez(video, features=np.ones((10, 50), dtype=np.float32))
    np.savez(text, last_hidden_state=np.ones((4, 32), dtype=np.float32))
    assert main(["predict", "--model", str(trained), "--video-features", str(video), "--text-features", str(text)]) == 2
    assert "1 video feature types but the model takes 2" in capsys.readouterr().err


def test_feature_files_in_the_wrong_order_exit_2_naming_the_type(trained, workspace, capsys):
    """64 + 32 columns given as 32 + 64: the total is right, the per-type widths saved with the model are not."""
    _, data, _ = workspace
    record = json.loads((data / "validation.jsonl").read_text().splitlines()[0])
    video = [str(data / folder / f"{record['vid']}.npz") for folder in ("clip_features", "slowfast_features")]
    text = str(data / "clip_text_features" / f"qid{record['qid']}.npz")
    assert main(["predict", "--model", str(trained), "--video-features", *video, "--text-features", text]) == 2
    error = capsys.readouterr().err
    assert "video feature type 1 (slowfast_features) is 32-d but the model was trained on 64-d" in error
    assert "in order: slowfast_features, clip_features" in error


def test_predict_duration_must_be_positive(trained, workspace, capsys):
    _, data, _ = workspace
    record = json.loads((data / "validation.jsonl").read_text().splitlines()[0])
    video = [str(data / folder / f"{record['vid']}.npz") for folder in ("slowfast_features", "clip_features")]
    text = str(data / "clip_text_features" / f"qid{record['qid']}.npz")
    for duration in ("-50", "0"):
        assert main(["predict", "--model", str(trained), "--video-features", *video, "--text-features", text,
                     "--duration", duration]) == 2
        assert "--duration must be a positive number" in capsys.readouterr().err


def test_the_saved_processor_holds_clip_length_and_feature_types(trained):
    from td_detr.processing_td_detr import TDDetrProcessor

    saved = read_json(trained / "preprocessor_config.json")
    assert saved["video_feature_types"] == ["slowfast_features", "clip_features"]
    assert saved["video_feature_dims"] == [64, 32] and saved["text_feature_dim"] == 32
    assert saved["clip_length"] == 2.0 and saved["normalize"] == "l2"
    assert TDDetrProcessor.from_pretrained(trained).to_dict() == TDDetrProcessor(**{
        k: v for k, v in saved.items() if k != "processor_class"}).to_dict()


@pytest.mark.slow
def test_two_process_training_gathers_metrics_like_one_process(workspace, tmp_path):
    """torchrun with 2 CPU processes (DDP over gloo): the final evaluation is sharded and gathered; the same saved
    weights evaluated in one process must give identical metrics."""
    root, data, config = workspace
    output = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "td_detr", "train",
               "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), "--max-steps", "2",
               "--batch-size", "4", "--output-dir", str(output), "--cache-dir", str(root / "cache")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("mAP avg") == 1  # one table, printed by rank 0
    assert "world size 2" in result.stdout
    single = tmp_path / "single"
    assert main(["evaluate", "--model", str(output), "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(single), "--cache-dir", str(root / "cache")]) == 0
    two = read_json(output / "metrics.json")
    one = read_json(single / "metrics.json")
    assert two["brief"] == one["brief"]
    assert len((output / "predictions.jsonl").read_text().splitlines()) == 6


def test_spurious_eval_writes_both_splits_and_reports(trained, workspace, tmp_path, capsys):
    root, data, _ = workspace
    out = tmp_path / "spurious"
    assert main(["spurious-eval", "--model", str(trained), "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(out), "--cache-dir", str(root / "cache")]) == 0
    report = read_json(out / "spurious_metrics.json")
    assert report["standard"] == read_json(trained / "metrics.json")["brief"]
    assert report["masked"]["Spurious-mAP"] == report["masked"]["MR-full-mAP"]
    assert set(report["dynamic_context"]) == set(report["standard"])
    assert set(report["dynamic_context_random"]) == set(report["standard"])  # both donors, side by side
    assert "random donor" in capsys.readouterr().out
    for name in ("masked", "dynamic_context", "dynamic_context_random"):
        assert Path(report["splits"][name]).is_file()
        assert (out / name / "slowfast_features").is_dir()
    masked_vids = {json.loads(line)["vid"] for line in Path(report["splits"]["masked"]).read_text().splitlines()}
    assert len(masked_vids) == 6  # one masked video per query
    # Each evaluation's predictions are kept: their per-query AP averages to the reported mAP (the ablation's
    # bootstrap resamples these).
    from td_detr.metrics import per_query_average_precision, read_jsonl

    for folder, name, key in ((out, "standard", "MR-full-mAP"), (out / "masked", "masked", "Spurious-mAP")):
        truth = read_jsonl(report["splits"]["masked"]) if name == "masked" else read_jsonl(data / "validation.jsonl")
        per_query = per_query_average_precision(read_jsonl(folder / "predictions.jsonl"), truth)
        assert round(100 * sum(per_query.values()) / len(per_query), 2) == report[name][key]


def test_train_resume_flag_continues_from_the_latest_checkpoint(workspace, tmp_path, capsys):
    root, data, config = workspace
    output = tmp_path / "resumable"
    common = ["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), "--batch-size", "8",
              "--save-steps", "2", "--output-dir", str(output), "--cache-dir", str(root / "cache")]
    assert main(common + ["--max-steps", "2"]) == 0  # the "killed" run: its last checkpoint is checkpoint-2
    assert (output / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists()
    assert (output / "checkpoints" / "checkpoint-2" / "preprocessor_config.json").exists()  # the processor travels
    capsys.readouterr()
    assert main(common + ["--max-steps", "4", "--resume"]) == 0
    assert f"resuming from {output / 'checkpoints' / 'checkpoint-2'}" in capsys.readouterr().out
    state = read_json(output / "checkpoints" / "checkpoint-4" / "trainer_state.json")
    assert state["global_step"] == 4
    assert main(["train", "--resume", "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(tmp_path / "empty"), "--cache-dir", str(root / "cache")]) == 2


@pytest.mark.parametrize("saved", [True, False])
def test_ctrl_c_during_training_says_how_to_resume(workspace, tmp_path, monkeypatch, capsys, saved):
    from td_detr.training import TDDetrTrainer

    root, data, config = workspace
    output = tmp_path / "interrupted"

    def interrupted_train(self, *args, **kwargs):
        if saved:  # a checkpoint was written before the interrupt
            (Path(self.args.output_dir) / "checkpoint-3").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(TDDetrTrainer, "train", interrupted_train)
    code = main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config),
                 "--output-dir", str(output), "--cache-dir", str(root / "cache")])
    assert code == 130
    message = capsys.readouterr().err
    if saved:
        assert "add --resume to the same command" in message and str(output / "checkpoints") in message
    else:
        assert "no checkpoint was saved yet" in message


def test_train_official_switch_saves_the_official_config_and_schedule(workspace, tmp_path, capsys):
    from td_detr.configuration_td_detr import OFFICIAL_TD_DETR

    root, data, config = workspace
    output = tmp_path / "official"
    assert main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), "--official",
                 "--max-steps", "7", "--batch-size", "8", "--lr-drop", "1", "--output-dir", str(output),
                 "--cache-dir", str(root / "cache")]) == 0
    saved = read_json(output / "config.json")
    assert {field: saved[field] for field in OFFICIAL_TD_DETR} == OFFICIAL_TD_DETR
    processor = read_json(output / "preprocessor_config.json")
    assert (processor["span_unit"], processor["clamp"]) == ("duration", "official")
    # 24 training queries × 2 passes / 8 = 6 steps per epoch; --lr-drop 1: the rate drops after step 6
    banner = f"24 queries × 2 passes per epoch): {7 / 6:g} epochs, 7 optimizer steps (6 per epoch), LR drops at steps 6;"
    assert banner in capsys.readouterr().out
