"""Network behaviour of the commands: a mistyped --config is answered from disk (known hub configs listed, no network);
a Hub that does not answer costs one short timeout and a message naming HF_HUB_OFFLINE=1, exit code 2 in every
command and 1 in push; a cached repo is used offline instead. The Hub here is a local port that never answers."""

from __future__ import annotations

import time

import pytest

from td_detr import hub_access
from td_detr.cli import main

from hub_test_utils import populate_hf_cache, tiny_model


def test_mistyped_config_lists_the_hub_configs_without_network(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # not the repository root, where the README's main job leaves td-detr-runs/synthetic

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(hub_access, "hub_answers", no_network)
    assert main(["train", "--config", "td-detr-qhv"]) == 2
    message = capsys.readouterr().err
    assert "did you mean td-detr-qvh?" in message
    assert "td-detr-charades, td-detr-qvh, td-detr-qvh-clip, td-detr-qvh-internvideo2" in message


@pytest.mark.parametrize("argv", [
    ["train", "--config", "org/missing"],
    ["evaluate", "--model", "org/missing", "--output-dir", "unused"],
    ["predict", "--model", "org/missing", "--video-features", "v.npz", "--text-features", "qid1.npz"],
    ["spurious-eval", "--model", "org/missing", "--output-dir", "unused"],
])
def test_an_unanswering_hub_fails_fast_with_exit_code_2(silent_hub, argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 8
    message = capsys.readouterr().err
    assert "org/missing" in message and silent_hub in message and "HF_HUB_OFFLINE=1" in message
    assert not (tmp_path / "unused").exists() and not (tmp_path / "td-detr-data").exists()  # no work started


def test_an_unanswering_hub_for_the_clip_model(silent_hub, tmp_path, capsys):
    pytest.importorskip("av")
    from video_utils import write_test_video

    tiny_model().save_pretrained(tmp_path / "model")
    video = write_test_video(tmp_path / "v.mp4", seconds=3)
    argv = ["predict", "--model", str(tmp_path / "model"), "--video", str(video), "--query", "a dog",
            "--clip-model", "org/clip"]
    assert main(argv) == 2
    assert "--clip-model org/clip" in capsys.readouterr().err


def test_push_to_an_unanswering_hub_exits_1(silent_hub, tmp_path, capsys):
    tiny_model().save_pretrained(tmp_path / "model")
    assert main(["push", "--model", str(tmp_path / "model"), "--repo-id", "org/tiny"]) == 1
    assert "does not answer" in capsys.readouterr().err


def test_a_cached_repo_is_used_offline_when_the_hub_does_not_answer(silent_hub, tmp_path, capsys):
    from huggingface_hub import constants

    model = tiny_model()
    model.save_pretrained(tmp_path / "model")
    populate_hf_cache(constants.HF_HUB_CACHE, "org/cached", tmp_path / "model")
    from td_detr.commands.model_loading import load_model

    loaded = load_model("org/cached")
    assert type(loaded).__name__ == "TDDetrForMomentRetrieval"
    assert constants.HF_HUB_OFFLINE is True
    assert "using the cached org/cached" in capsys.readouterr().err
