"""examples/*.py run as written (subprocesses, no arguments) in a folder laid out as after the main job, at tiny
sizes: a tiny trained model in td-detr-runs/synthetic, a small synthetic data set in
td-detr-data/synthetic, a tiny random CLIP folder, a generated video. The README's snippets are copies of them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from td_detr.cli import main

from training_utils import make_tiny_synthetic, write_tiny_config

pytestmark = pytest.mark.slow  # each example runs in its own Python process

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder as after `td-detr train`: tiny data set and model in the default places."""
    root = tmp_path_factory.mktemp("first_hour")
    data = make_tiny_synthetic(root / "td-detr-data" / "synthetic", size=24)
    config = write_tiny_config(root / "tiny.json")
    assert main(["train", "--data-dir", str(data), "--config", str(config), "--max-steps", "2", "--batch-size", "8",
                 "--output-dir", str(root / "td-detr-runs" / "synthetic"), "--cache-dir", str(root / "cache")]) == 0
    return root


def run_example(name: str, cwd: Path) -> str:
    env = {**os.environ, "HF_DATASETS_CACHE": str(cwd / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_predict_on_dataset_row(workdir):
    out = run_example("predict_on_dataset_row.py", workdir)
    assert "ground truth:" in out and "most salient clip:" in out
    windows = re.findall(r"^\s+([\d.]+) -\s+([\d.]+) s\s+score", out, flags=re.M)
    assert len(windows) == 3 and all(float(end) > float(start) for start, end in windows)


def test_finetune_own_data(workdir):
    out = run_example("finetune_own_data.py", workdir)
    assert re.search(r"validation mAP: [\d.]+ before, [\d.]+ after fine-tuning on 54 queries", out)
    assert (workdir / "own-data" / "video" / "video0.npz").is_file()
    assert (workdir / "own-data" / "text" / "qid0.npz").is_file()
    assert (workdir / "own-model" / "model.safetensors").is_file()


def test_video_to_moments(workdir):
    pytest.importorskip("av")
    from td_detr import TDDetrConfig, TDDetrForMomentRetrieval

    from video_utils import PROJECTION_DIM, TEXT_HIDDEN_SIZE, save_tiny_clip, write_test_video

    save_tiny_clip(workdir / "clip-vit-base-patch32")
    config = TDDetrConfig(video_feature_size=PROJECTION_DIM, text_feature_size=TEXT_HIDDEN_SIZE, hidden_size=16,
                          num_attention_heads=2, ffn_dim=32, t2v_layers=1, encoder_layers=1, decoder_layers=1,
                          num_queries=4, max_video_length=8)
    TDDetrForMomentRetrieval(config).save_pretrained(workdir / "qd-detr-qvh-clip")
    write_test_video(workdir / "my_video.mp4", seconds=7, fps=4)
    out = run_example("video_to_moments.py", workdir)
    assert out.count("'score'") == 3 and "7 s; most salient clip:" in out


def code_blocks(text: str, language: str) -> list[str]:
    return [block.strip() for block in re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)]


def test_readme_python_snippets_are_copies_of_the_examples():
    readme = (REPO / "README.md").read_text()
    snippets = code_blocks(readme, "python")
    assert snippets
    sources = {path.name: path.read_text() for path in EXAMPLES.glob("*.py")}
    for snippet in snippets:
        lines = [line for line in snippet.splitlines() if line.strip()]
        assert any(in_order(lines, source.splitlines()) for source in sources.values()), snippet


def in_order(lines: list[str], source: list[str]) -> bool:
    """Every line of the snippet is a line of the source, in the same order."""
    position = 0
    for line in lines:
        try:
            position = source.index(line, position) + 1
        except ValueError:
            return False
    return True
