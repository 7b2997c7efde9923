"""docs/MODELS.md: its commands exist as written, and the CLIP-only path (convert the released QD-DETR checkpoint,
then `predict --video`) runs end to end on a checkpoint shaped like the release (the release's options, random
weights) with a local CLIP of the release's widths."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from td_detr.cli import build_parser, main

from test_convert import QD_DEFAULTS, official_state_dict, save_checkpoint

DOC = Path(__file__).resolve().parents[1] / "docs" / "MODELS.md"
# run_on_video/qd_detr_ckpt/video_onlyclip_opt.json of wjun0830/QD-DETR (the checkpoint's options count the TEF)
CLIP_ONLY_OPTIONS = dict(QD_DEFAULTS, v_feat_dim=512 + 2, t_feat_dim=512)


def documented_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("#")[0].strip()
            if command.startswith("td-detr "):
                commands.append(command)
    return commands


def test_every_documented_command_parses():
    commands = documented_commands()
    assert len(commands) >= 5
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])  # exits (fails the test) on an unknown flag or command


def test_clip_only_release_converts_and_predicts_on_a_video(tmp_path, monkeypatch, capsys):
    pytest.importorskip("av")
    from video_utils import save_tiny_clip, write_test_video

    monkeypatch.chdir(tmp_path)
    save_checkpoint(tmp_path / "model_best.ckpt", official_state_dict(CLIP_ONLY_OPTIONS), CLIP_ONLY_OPTIONS)
    write_test_video(tmp_path / "my_video.mp4", seconds=7, fps=4)
    clip = save_tiny_clip(tmp_path / "clip", text_hidden_size=512, projection_dim=512)

    convert = next(c for c in documented_commands() if c.startswith("td-detr convert") and "model_best.ckpt" in c)
    assert main(shlex.split(convert)[1:]) == 0
    config = json.loads((tmp_path / "qd-detr-qvh-clip" / "config.json").read_text())
    assert (config["video_feature_size"], config["text_feature_size"], config["use_dynamics"]) == (512, 512, False)

    predict = next(c for c in documented_commands() if "--video " in c)
    predict = predict.replace("openai/clip-vit-base-patch32", str(clip))  # the test machine has no Hub access
    capsys.readouterr()
    assert main(shlex.split(predict)[1:]) == 0
    table = capsys.readouterr().out
    assert "4 clips of 2 s (7 s)" in table
    assert (tmp_path / "answer.png").stat().st_size > 0
