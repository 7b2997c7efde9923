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


def _official_table() -> dict:
    """`field=value` settings of the last column of docs/RESULTS.md's "Paper versus official code" table."""
    import ast
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md").read_text()
    section = re.split(r"## \d+\. Paper versus official code", text, maxsplit=1)[1]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header[-1].startswith("official setting")
    table = {}
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) != len(header):
            break  # the next table
        field, value = re.fullmatch(r"`(\w+)=(.+)`", cells[-1]).groups()
        table[field] = ast.literal_eval(value)
    return table


def test_official_switch_sets_exactly_the_documented_official_behaviours():
    from td_detr.configuration_td_detr import OFFICIAL_TD_DETR
    from td_detr.processing_td_detr import OFFICIAL_PROCESSING
    from td_detr.training import OFFICIAL_TRAINING, TRAINING_PRESETS, preset_for

    assert _official_table() == {**OFFICIAL_TD_DETR, **OFFICIAL_PROCESSING, **OFFICIAL_TRAINING}
    official = TDDetrConfig.official_td_detr()
    for field, value in OFFICIAL_TD_DETR.items():
        assert getattr(official, field) == value, field
    # everything else stays as it was: the data set's config, and keywords still override
    charades = TDDetrConfig.official_td_detr(base=TDDetrConfig.charades_sta(), synthesis_alpha=0.5)
    assert (charades.clip_length, charades.t2v_layers, charades.synthesis_alpha) == (1.0, 3, 0.5)
    assert charades.synthesis_sampling == "fixed_count" and charades.official_t2v_mask
    for name in TRAINING_PRESETS:
        preset = preset_for(name, official=True)
        assert {k: getattr(preset, k) for k in OFFICIAL_TRAINING} == OFFICIAL_TRAINING


def test_defaults_follow_the_paper_where_it_describes_the_behaviour():
    config = TDDetrConfig()
    assert not config.synthesis_keep_originals  # §3.1-3.2: a step trains on the 2·B synthesized videos
    assert config.synthesis_cap_length and not config.dynamics_with_position
    assert (config.synthesis_sampling, config.synthesis_similarity) == ("bernoulli", "mean")
    assert config.postprocess_clamp == "duration" and not config.official_t2v_mask


def test_every_collator_setting_is_a_validated_config_field():
    from td_detr.data.collator import CONFIG_FIELDS

    fields = TDDetrConfig.__dataclass_fields__
    assert [name for name in CONFIG_FIELDS if name not in fields] == []
    for field, value in [("synthesis_part_order", "shuffled"), ("pseudo_label_clip", "seconds"),
                         ("synthesis_anchor_fraction", 0.0), ("postprocess_clamp", "video"),
                         ("synthesis_length_jitter", 1.5)]:
        with pytest.raises(ValueError, match=field):
            TDDetrConfig(**{field: value})
