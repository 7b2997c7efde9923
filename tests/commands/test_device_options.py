"""`td-detr train` device flags: --device / --bf16 / --fp16 / --compile / --dataloader-workers onto TrainingArguments,
bad combinations exit 2 before any work, precision in the run fingerprint, a bf16 CPU run completes."""

from __future__ import annotations

import argparse
import json

import pytest

from td_detr.cli import main
from td_detr.commands.device_options import (add_device_arguments, device_training_arguments, execution_record,
                                             resolve_device)
from td_detr.devices import compile_model
from td_detr.training import preset_for, training_arguments

from training_utils import read_json


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_device_arguments(parser)
    return parser.parse_args(list(flags))


@pytest.mark.parametrize("cuda, expected", [(True, "cuda"), (False, "cpu")])
def test_auto_picks_cuda_when_present_and_device_cpu_forces_the_cpu(cuda, expected):
    assert resolve_device(parse(), cuda_available=cuda) == expected
    assert resolve_device(parse("--device", "cpu"), cuda_available=cuda) == "cpu"


def test_flags_map_onto_training_arguments(tmp_path):
    args = parse("--bf16", "--compile", "--dataloader-workers", "3", "--device", "cpu")
    keywords = device_training_arguments(args, resolve_device(args, cuda_available=False))
    training = training_arguments(str(tmp_path), preset_for("synthetic"), **keywords)
    assert (training.bf16, training.fp16, training.torch_compile) == (True, False, False)  # compile_model's
    assert training.dataloader_num_workers == 3
    assert training.use_cpu and not training.dataloader_pin_memory  # nothing to pin for on the CPU
    assert str(training.device) == "cpu"
    assert execution_record(args, "cpu") == {"device": "cpu", "compile": True, "dataloader_workers": 3,
                                             "features_on_device": False}


def test_compile_compiles_the_encoder_decoder_in_place_and_keeps_the_weight_names():
    from td_detr import TDDetrForMomentRetrieval

    from model_utils import tiny_config

    model = TDDetrForMomentRetrieval(tiny_config())
    names = list(model.state_dict())
    assert model.model._compiled_call_impl is None
    compile_model(model)
    assert model.model._compiled_call_impl is not None and model._compiled_call_impl is None  # the loss stays eager
    assert list(model.state_dict()) == names


def test_on_cuda_batches_are_pinned_and_fp16_is_allowed():
    args = parse("--fp16")
    device = resolve_device(args, cuda_available=True)
    keywords = device_training_arguments(args, device)
    assert device == "cuda" and keywords["fp16"] and not keywords["bf16"]
    assert keywords["dataloader_pin_memory"] and not keywords["use_cpu"]
    assert device_training_arguments(parse(), "cpu")["dataloader_pin_memory"] is False
    assert device_training_arguments(parse("--features-on-device"), "cuda")["dataloader_pin_memory"] is False


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--fp16", "--device", "cpu"], "--fp16 needs a CUDA GPU"),
        (["--bf16", "--fp16"], "--bf16 and --fp16 exclude each other"),
        (["--device", "cuda"], "--device cuda: no CUDA GPU"),
        (["--dataloader-workers", "-1"], "--dataloader-workers must be 0 or more"),
        (["--features-on-device", "--dataloader-workers", "2"], "it needs --dataloader-workers 0"),
    ],
)
def test_bad_combinations_exit_2_with_one_line_before_any_work(flags, message, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    output = tmp_path / "never"
    assert main(["train", "--output-dir", str(output), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not output.exists()


def test_an_fp32_run_keeps_the_fingerprint_it_had_before_the_precision_flags():
    """Precision enters the fingerprint only when on: runs started before the flags existed still resume."""
    from types import SimpleNamespace

    from td_detr.commands.train import FINGERPRINT_PRECISION_ARGS, FINGERPRINT_TRAINING_ARGS
    from td_detr.configuration_td_detr import TDDetrConfig
    from td_detr.run_folder import run_fingerprint

    assert not set(FINGERPRINT_PRECISION_ARGS) & set(FINGERPRINT_TRAINING_ARGS)
    settings = SimpleNamespace(annotation_files={}, video_feature_dirs=[], text_feature_dir="t")
    data = SimpleNamespace(name="x", settings=settings, splits={"train": [1, 2]})
    training = {"learning_rate": 1e-4}
    plain = run_fingerprint(TDDetrConfig(), data, 0, training)
    assert run_fingerprint(TDDetrConfig(), data, 0, training, execution={"device": "cuda"})["fingerprint"] == \
        plain["fingerprint"]  # how a run is executed is not what it is
    assert run_fingerprint(TDDetrConfig(), data, 0, {**training, "bf16": True})["fingerprint"] != plain["fingerprint"]


def test_a_two_step_bf16_cpu_run_completes_and_records_its_settings(workspace, tmp_path, capsys):
    root, data, config = workspace
    output = tmp_path / "bf16"
    assert main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), "--max-steps", "2",
                 "--batch-size", "8", "--output-dir", str(output), "--cache-dir", str(root / "cache"), "--bf16",
                 "--device", "cpu"]) == 0
    run = read_json(output / "run.json")
    assert run["run"]["training"]["bf16"] is True and "fp16" not in run["run"]["training"]
    assert run["execution"] == {"device": "cpu", "compile": False, "dataloader_workers": 0, "features_on_device": False}
    assert (output / "model.safetensors").exists()

    # precision is part of what the run is: resuming it in fp32 is refused, naming the setting
    capsys.readouterr()
    assert main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), "--max-steps", "3",
                 "--batch-size", "8", "--output-dir", str(output), "--cache-dir", str(root / "cache"),
                 "--device", "cpu", "--resume"]) == 2
    assert "training.bf16 (True → None)" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["evaluate", "spurious-eval"])
def test_evaluation_commands_refuse_cuda_without_a_gpu_before_any_work(command, workspace, tmp_path, capsys,
                                                                       monkeypatch):
    import torch

    root, data, _ = workspace
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    output = tmp_path / "never"
    assert main([command, "--model", str(tmp_path / "no-model"), "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(output), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--device cuda: no CUDA GPU" in err and len(err.splitlines()) == 1
    assert not output.exists()


@pytest.mark.cuda
def test_evaluate_on_cuda_predicts_what_the_cpu_predicts(workspace, trained, tmp_path):
    root, data, _ = workspace
    records = {}
    for device in ("cpu", "cuda"):
        output = tmp_path / device
        assert main(["evaluate", "--model", str(trained), "--dataset", "synthetic", "--data-dir", str(data),
                     "--cache-dir", str(root / "cache"), "--output-dir", str(output), "--device", device]) == 0
        records[device] = [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]
    assert [r["qid"] for r in records["cuda"]] == [r["qid"] for r in records["cpu"]]
    for gpu, cpu in zip(records["cuda"], records["cpu"]):
        assert gpu["pred_saliency_scores"] == pytest.approx(cpu["pred_saliency_scores"], abs=1e-4)
        scores = lambda r: [w[2] for w in r["pred_relevant_windows"]]  # noqa: E731
        assert sorted(scores(gpu)) == pytest.approx(sorted(scores(cpu)), abs=1e-3)
