"""One registry of per-data-set facts (td_detr.registry): the builder configs, model configs, training presets, hub
configs, model cards and the --dataset choices are all read from it, so adding a data set is one entry."""

from td_detr import TDDetrConfig
from td_detr.commands.data_options import DATASET_CHOICES
from td_detr.data.builder import MomentRetrievalBuilder
from td_detr.hub import DATASETS, HUB_PRESETS, load_hub_config
from td_detr.registry import DATA_SETS, DataSet, data_set
from td_detr.training import TRAINING_PRESETS, model_config_for, preset_for


def test_every_consumer_reads_the_registry(monkeypatch):
    with_files = [name for name, entry in DATA_SETS.items() if entry.builder]
    assert [c.name for c in MomentRetrievalBuilder.BUILDER_CONFIGS] == [*with_files, "layout"]
    assert set(DATASET_CHOICES) == {"synthetic", *with_files}
    for name, entry in DATA_SETS.items():
        assert TRAINING_PRESETS[name] is entry.training and preset_for(name) is entry.training
        assert DATASETS[name] is entry.card
        config = TDDetrConfig.for_data_set(name)
        assert all(getattr(config, key) == value for key, value in entry.model.items())
    assert preset_for("some-custom-folder") is DATA_SETS["custom"].training
    for name, preset in HUB_PRESETS.items():
        assert load_hub_config(name).to_dict() == TDDetrConfig.for_data_set(preset.dataset_name, **preset.model).to_dict()
    assert data_set("charades-sta") is DATA_SETS["charades_sta"]
    assert TDDetrConfig.charades_sta().to_dict() == TDDetrConfig.for_data_set("charades_sta").to_dict()


def test_a_new_entry_is_a_new_data_set_everywhere(monkeypatch):
    """An entry added to the registry reaches the model config and the training preset without other edits."""
    import td_detr.registry as registry

    entry = DataSet(card=DATA_SETS["custom"].card, training=DATA_SETS["synthetic"].training, model=dict(t2v_layers=1))
    monkeypatch.setitem(registry.DATA_SETS, "tacos", entry)
    assert TDDetrConfig.for_data_set("tacos").t2v_layers == 1
    assert preset_for("tacos") is entry.training

    class Settings:
        video_feature_dims, text_feature_dim, clip_length, max_video_length, max_query_length = (8,), 4, 2.0, 200, None

    assert model_config_for("tacos", Settings()).t2v_layers == 1
