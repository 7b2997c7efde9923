import json

import pytest
from transformers import AutoConfig

from td_detr import TDDetrConfig


def test_qd_detr_baseline_is_qd_detr_and_takes_overrides():
    config = TDDetrConfig.qd_detr_baseline(hidden_size=64)
    assert not config.use_dynamics and config.synthesis_pairing == "none"  # what makes the model QD-DETR
    assert config.hidden_size == 64


def test_json_round_trip_keeps_every_field(tmp_path):
    config = TDDetrConfig(hidden_size=64, dynamics_beta=0.3, max_video_length=None, dynamics_fusion="scaled")
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "td_detr"
    assert saved["dynamics_beta"] == 0.3 and saved["max_video_length"] is None
    # fields left at their default are written too (the transformers < 5.4 pitfall)
    assert saved["giou_loss_weight"] == 10.0 and saved["synthesis_sampling"] == "bernoulli"
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, TDDetrConfig)
    strip = lambda d: {k: v for k, v in d.items() if k != "_name_or_path"}
    assert strip(loaded.to_dict()) == strip(config.to_dict())


@pytest.mark.parametrize(
    "field, value",
    [("dynamics_fusion", "sum"), ("synthesis_pairing", "nearest"), ("dynamics_beta", 1.5), ("num_attention_heads", 3)],
)
def test_invalid_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TDDetrConfig(**{field: value})
