"""Custom data trains a preset that fits its size (issue 17 §2): model width / depth and epochs chosen from the number
of training queries by the one table `td_detr.registry.CUSTOM_SIZE_TIERS`, `--config` / `--epochs` win, and the
banner names the preset, parameters, epochs, optimizer steps and a time estimate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from td_detr.cli import main
from td_detr.registry import CUSTOM_SIZE_TIERS, DATA_SETS
from td_detr.training import model_config_for, preset_for, size_table

from training_utils import make_tiny_synthetic, read_json, write_tiny_config

README = Path(__file__).resolve().parents[2] / "README.md"


class Settings:
    video_feature_dims, text_feature_dim, clip_length, max_video_length, max_query_length = (8,), 4, 2.0, 75, None


def tier_cases():
    """For each row: its smallest N, one inside and its last N (the next row's bound minus one)."""
    low = 0
    for tier in CUSTOM_SIZE_TIERS:
        high = tier.below - 1 if tier.below else low * 10
        for n in sorted({low, (low + high) // 2, high}):
            yield n, tier
        low = tier.below or low


@pytest.mark.parametrize("num_queries, tier", list(tier_cases()), ids=lambda v: str(v) if isinstance(v, int) else "")
def test_custom_data_gets_the_tier_of_its_size(num_queries, tier):
    preset = preset_for("custom", num_queries=num_queries)
    assert preset == tier.training
    config = model_config_for("custom", Settings(), num_queries=num_queries)
    assert all(getattr(config, key) == value for key, value in tier.model.items())
    # a named data set keeps its own preset whatever its size
    assert preset_for("qvhighlights", num_queries=num_queries) is DATA_SETS["qvhighlights"].training


def test_tiers_grow_with_the_data():
    bounds = [tier.below for tier in CUSTOM_SIZE_TIERS]
    assert bounds[-1] is None and bounds[:-1] == sorted(bounds[:-1])
    from td_detr import TDDetrForMomentRetrieval, TDDetrConfig

    sizes = [sum(p.numel() for p in TDDetrForMomentRetrieval(TDDetrConfig(**tier.model)).parameters())
             for tier in CUSTOM_SIZE_TIERS]
    assert sizes[0] < sizes[1] < sizes[2]
    # the largest tier is the paper model and run, as custom data trained before it had tiers
    assert CUSTOM_SIZE_TIERS[-1].training is DATA_SETS["custom"].training
    assert TDDetrConfig(**CUSTOM_SIZE_TIERS[-1].model).to_dict() == TDDetrConfig.for_data_set("custom").to_dict()


def test_readme_shows_the_table():
    assert size_table() in README.read_text()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("size-preset")
    return root, make_tiny_synthetic(root / "data", size=24)


def train_custom(data, output, *extra):
    root, folder = data
    return main(["train", "--train-file", str(folder / "train.jsonl"), "--video-feature-dir",
                 str(folder / "slowfast_features"), "--video-feature-dir", str(folder / "clip_features"),
                 "--text-feature-dir", str(folder / "clip_text_features"), "--clip-length", "2",
                 "--output-dir", str(output), "--cache-dir", str(root / "cache"), *extra])


@pytest.mark.slow  # trains the smallest custom tier's model for 4 steps: ~5 s, the longest of the quick tests
def test_banner_names_preset_parameters_epochs_steps_and_time(data, tmp_path, capsys):
    num_queries = sum(1 for _ in (data[1] / "train.jsonl").open())
    tier = CUSTOM_SIZE_TIERS[0]
    assert num_queries < tier.below
    assert train_custom(data, tmp_path / "run", "--max-steps", "4") == 0
    out = capsys.readouterr().out
    assert f"preset: custom-{tier.name} (N = {num_queries} training queries" in out
    assert "overridden by --max-steps" in out
    banner = re.search(r"training (\d+\.\d\d)M parameters on custom \(\d+ queries × 2 passes per epoch\): "
                       r"([\d.]+) epochs, 4 optimizer steps \((\d+) per epoch\)", out)
    assert banner, out
    assert float(banner.group(2)) == pytest.approx(4 / int(banner.group(3)))
    assert re.search(r"^time estimate: \d+\.\d\d s per step, ~\d+ (s|min|h) for the remaining \d+ of 4 steps", out,
                     flags=re.M), out
    config = read_json(tmp_path / "run" / "config.json")
    assert all(config[key] == value for key, value in tier.model.items())
    from td_detr import TDDetrForMomentRetrieval

    model = TDDetrForMomentRetrieval.from_pretrained(tmp_path / "run")
    assert float(banner.group(1)) == round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


def test_config_and_epochs_override_the_tier(data, tmp_path, capsys):
    config_file = write_tiny_config(tmp_path / "tiny.json")
    assert train_custom(data, tmp_path / "run", "--config", str(config_file), "--epochs", "1",
                        "--batch-size", "16") == 0
    out = capsys.readouterr().out
    assert "overridden by --config, --epochs" in out
    assert re.search(r"custom \(24 queries × 2 passes per epoch\): 1 epochs, 3 optimizer steps \(3 per epoch\)", out), out
    saved = read_json(tmp_path / "run" / "config.json")
    assert saved["hidden_size"] == read_json(config_file)["hidden_size"] != CUSTOM_SIZE_TIERS[0].model["hidden_size"]
