"""Named hub configs: equal to their presets, in sync on disk, loadable by name / folder / file, and usable."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from td_detr import TDDetrConfig, TDDetrForMomentRetrieval
from td_detr.errors import TDDetrInputError
from td_detr.hub import HUB_CONFIG_NAMES, HUB_PRESETS, load_hub_config

ROOT = Path(__file__).resolve().parents[2]
IGNORED = {"transformers_version", "_name_or_path"}


def comparable(config: TDDetrConfig) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in IGNORED}


def load_script():
    spec = importlib.util.spec_from_file_location("make_hub_configs", ROOT / "scripts" / "make_hub_configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_presets_are_the_package_configs():
    assert comparable(load_hub_config("td-detr-qvh")) == comparable(TDDetrConfig())
    assert comparable(load_hub_config("td-detr-charades")) == comparable(TDDetrConfig.charades_sta())
    internvideo2 = load_hub_config("td-detr-qvh-internvideo2")
    assert comparable(internvideo2) == comparable(TDDetrConfig(video_feature_size=768, text_feature_size=4096))


@pytest.mark.parametrize("name", HUB_CONFIG_NAMES)
def test_committed_configs_are_the_generated_preset(name):
    preset = comparable(HUB_PRESETS[name].make_config())
    assert comparable(load_hub_config(name)) == preset  # by name: built from the registry (works from a wheel)
    assert comparable(load_hub_config(ROOT / "hub_configs" / name)) == preset  # the folder
    assert comparable(load_hub_config(ROOT / "hub_configs" / name / "config.json")) == preset  # the file
    card = ModelCard.load(ROOT / "hub_configs" / name / "README.md")
    assert card.data.library_name == "transformers" and "td-detr" in card.data.tags


def test_generated_files_are_in_sync():
    """Fails when TDDetrConfig defaults, the presets or the card template changed without re-running
    `python scripts/make_hub_configs.py`."""
    stale = [str(p.relative_to(ROOT)) for p, text in load_script().expected_files("your-org").items()
             if not p.is_file() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"re-run scripts/make_hub_configs.py: stale {stale}"


@pytest.mark.slow  # full-size models
@pytest.mark.parametrize("name", HUB_CONFIG_NAMES)
def test_hub_config_builds_a_working_model(name):
    config = load_hub_config(name)
    torch.manual_seed(0)
    model = TDDetrForMomentRetrieval(config).eval()
    batch = dict(video_features=torch.randn(1, 6, config.video_feature_size), video_mask=torch.ones(1, 6),
                 text_features=torch.randn(1, 4, config.text_feature_size), text_mask=torch.ones(1, 4))
    with torch.no_grad():
        outputs = model(**batch)
    assert outputs.pred_spans.shape == (1, config.num_queries, 2) and outputs.saliency_scores.shape == (1, 6)


def test_name_wins_over_a_same_named_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "td-detr-qvh").mkdir()  # e.g. a training output folder
    assert load_hub_config("td-detr-qvh").hidden_size == 256
    with pytest.raises(TDDetrInputError, match="no config.json"):
        load_hub_config(Path("td-detr-qvh"))


def test_load_hub_config_errors(tmp_path):
    with pytest.raises(TDDetrInputError, match="unknown hub config 'td-detr-tacos'.*td-detr-qvh"):
        load_hub_config("td-detr-tacos")
    with pytest.raises(TDDetrInputError, match="no config.json"):
        load_hub_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(TDDetrInputError, match="model_type is 'bert'"):
        load_hub_config(tmp_path)
