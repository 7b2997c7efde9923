"""`td-detr push`, `push_model` and `model.push_to_hub` end to end against the local fake Hub, then back through the
normal `from_pretrained("org/name")` download path.

The fake Hub takes every file inline (no LFS / Xet transfer), ignores tokens and does none of the Hub's validation,
so these tests cannot catch problems in those parts.
"""

from __future__ import annotations

import json

import pytest
from hub_test_utils import assert_same_model, run_python, tiny_model
from huggingface_hub import ModelCard
from transformers import AutoConfig, AutoModel

from td_detr import TDDetrForMomentRetrieval, TDDetrModel
from td_detr.cli import main as cli_main
from td_detr.errors import TDDetrInputError
from td_detr.hub import push_model

METRICS = {
    "brief": {"MR-full-R1@0.5": 61.25, "MR-full-R1@0.7": 45.5, "MR-full-mAP": 40.75, "MR-full-mAP@0.5": 60.0,
              "HL-min-VeryGood-mAP": 39.5, "HL-min-VeryGood-Hit1": 63.0},
    "full": {"MR-mAP": {"0.5": 60.0, "average": 40.75}, "MR-R1": {"0.5": 61.25, "0.7": 45.5}},
}


@pytest.fixture
def saved_model(tmp_path):
    """A tiny model saved with save_pretrained plus its metrics.json, and the in-memory model."""
    model = tiny_model(seed=3)
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    return folder, model


def model_index_values(card: ModelCard) -> dict[str, float]:
    return {result.metric_type: result.metric_value for result in card.data.eval_results}


def test_cli_push_round_trip(hub_client, saved_model, capsys):
    folder, model = saved_model
    assert cli_main(["push", "--model", str(folder), "--repo-id", "org/tiny-cli"]) == 0
    assert "org/tiny-cli" in capsys.readouterr().out

    files = hub_client.state.files("org/tiny-cli")
    assert set(files) == {"config.json", "model.safetensors", "metrics.json", "README.md"}
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert json.loads(files["metrics.json"]) == METRICS

    loaded = TDDetrForMomentRetrieval.from_pretrained("org/tiny-cli")
    assert_same_model(model, loaded)
    card = ModelCard.load("org/tiny-cli")
    assert model_index_values(card) == {"R1@0.5": 61.25, "R1@0.7": 45.5, "mAP": 40.75, "mAP@0.5": 60.0,
                                        "HL-mAP": 39.5, "HIT@1": 63.0}
    assert card.data.license == "cc-by-nc-sa-4.0"  # guessed QVHighlights from the HL metrics
    assert ("POST", "/api/models/org/tiny-cli/commit/main") in hub_client.state.requests


def test_push_model_twice_and_own_readme(hub_client, saved_model):
    folder, model = saved_model
    first = push_model(folder, "org/tiny-twice", private=True, commit_message="first")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# my own card\n")
    second = push_model(folder, "org/tiny-twice", commit_message="second")  # repo exists: still fine

    repo = hub_client.state.repos["model/org/tiny-twice"]
    assert repo.private and first.oid != second.oid and repo.head[0] == second.oid
    assert hub_client.state.files("org/tiny-twice")["README.md"] == (folder / "README.md").read_bytes()
    # an old revision stays downloadable by its commit hash
    old = TDDetrForMomentRetrieval.from_pretrained("org/tiny-twice", revision=first.oid)
    assert_same_model(model, old)


def test_push_to_hub_mixin_and_auto_classes(hub_client):
    model = tiny_model(seed=5)
    model.push_to_hub("org/tiny-mixin", tags=["td-detr"])
    assert {"config.json", "model.safetensors", "README.md"} <= set(hub_client.state.files("org/tiny-mixin"))

    assert_same_model(model, TDDetrForMomentRetrieval.from_pretrained("org/tiny-mixin"))
    downloaded = AutoConfig.from_pretrained("org/tiny-mixin")
    assert downloaded.name_or_path == "org/tiny-mixin"
    assert {**downloaded.to_dict(), "_name_or_path": ""} == model.config.to_dict()
    base = AutoModel.from_pretrained("org/tiny-mixin")
    assert isinstance(base, TDDetrModel)
    assert all(base.state_dict()[k].equal(v) for k, v in model.model.state_dict().items())
    assert "td-detr" in ModelCard.load("org/tiny-mixin").data.tags


def test_missing_repo_is_an_error(hub_client):
    with pytest.raises(OSError, match="org/not-there"):
        TDDetrForMomentRetrieval.from_pretrained("org/not-there")


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_folder", "no such folder"),
        ("no_config", "no config.json"),
        ("bad_json", "not valid JSON"),
        ("wrong_type", "model_type is 'bert'"),
        ("no_weights", "no \\*.safetensors weights \\(found pytorch_model.bin"),
        ("bad_metrics", "metrics.json: cannot read metrics"),
    ],
)
def test_push_rejects_a_folder_that_is_not_a_saved_model(saved_model, breakage, message, capsys):
    folder, _ = saved_model
    config = folder / "config.json"
    if breakage == "no_folder":
        folder = folder / "missing"
    elif breakage == "no_config":
        config.unlink()
    elif breakage == "bad_json":
        config.write_text("{not json")
    elif breakage == "wrong_type":
        config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "bert"}))
    elif breakage == "no_weights":
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    elif breakage == "bad_metrics":
        (folder / "metrics.json").write_text("[1, 2")
    # validation happens before any network call: no Hub needed
    assert cli_main(["push", "--model", str(folder), "--repo-id", "org/never"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("td-detr push: error:") and str(folder) in error
    with pytest.raises(TDDetrInputError, match=message):
        push_model(folder, "org/never")


def test_push_rejects_a_bad_repo_id(saved_model, capsys):
    folder, _ = saved_model
    assert cli_main(["push", "--model", str(folder), "--repo-id", "org//two slashes"]) == 2
    assert "--repo-id 'org//two slashes'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_push_in_a_fresh_process_follows_hf_endpoint(fake_hub, saved_model, tmp_path):
    """The user's path: HF_ENDPOINT set in the environment before huggingface_hub is imported."""
    folder, _ = saved_model
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "hf-home")}
    result = run_python(["-m", "td_detr", "push", "--model", str(folder), "--repo-id", "org/tiny-subprocess",
                         "--dataset", "charades_sta"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = fake_hub.state.files("org/tiny-subprocess")
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    card = ModelCard(files["README.md"].decode())
    assert card.data.license == "other" and card.data.datasets == ["Charades-STA"]
