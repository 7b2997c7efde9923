"""`from_pretrained("org/td-detr-qvh")` by repo id with HF_HUB_OFFLINE, from an HF cache laid out by hand."""

from __future__ import annotations

import json

import pytest
import torch
from hub_test_utils import UNREACHABLE, assert_same_model, fixed_batch, populate_hf_cache, run_python
from transformers import AutoConfig, AutoModel

from td_detr import TDDetrForMomentRetrieval, TDDetrModel
from td_detr.hub import load_hub_config


@pytest.fixture(scope="module")
def qvh_checkpoint(tmp_path_factory):
    """A randomly initialised model with the full `td-detr-qvh` hub config, saved with save_pretrained."""
    torch.manual_seed(7)
    model = TDDetrForMomentRetrieval(load_hub_config("td-detr-qvh")).eval()
    folder = tmp_path_factory.mktemp("td-detr-qvh")
    model.save_pretrained(folder)
    return folder, model


def test_from_pretrained_by_repo_id_offline(offline_cache, qvh_checkpoint):
    folder, model = qvh_checkpoint
    commit = populate_hf_cache(offline_cache, "org/td-detr-qvh", folder)

    loaded = TDDetrForMomentRetrieval.from_pretrained("org/td-detr-qvh")
    assert_same_model(model, loaded)
    assert loaded.config.to_diff_dict() | {"_name_or_path": ""} == model.config.to_diff_dict() | {"_name_or_path": ""}
    assert isinstance(AutoModel.from_pretrained("org/td-detr-qvh"), TDDetrModel)
    assert AutoConfig.from_pretrained("org/td-detr-qvh", revision=commit).hidden_size == 256

    # the cache layout is the real one: huggingface_hub's own scanner reads it without warnings
    from huggingface_hub import scan_cache_dir

    report = scan_cache_dir(offline_cache)
    assert not report.warnings
    assert [repo.repo_id for repo in report.repos] == ["org/td-detr-qvh"]


def test_offline_without_the_repo_in_cache_fails_clearly(offline_cache):
    with pytest.raises(OSError, match="couldn.t find them in the cached files"):
        TDDetrForMomentRetrieval.from_pretrained("org/td-detr-charades")


@pytest.mark.slow
def test_offline_in_a_fresh_process_from_hf_home(qvh_checkpoint, tmp_path):
    """The user's path: HF_HOME and HF_HUB_OFFLINE=1 set before import, an endpoint that cannot be reached."""
    folder, model = qvh_checkpoint
    hf_home = tmp_path / "hf-home"
    populate_hf_cache(hf_home / "hub", "org/td-detr-qvh", folder)
    batch = fixed_batch(model.config)
    with torch.no_grad():
        expected = model(**batch).logits
    torch.save(batch, tmp_path / "batch.pt")
    script = (
        "import json, sys, torch\n"
        "import td_detr\n"
        "from transformers import AutoModel\n"
        "model = td_detr.TDDetrForMomentRetrieval.from_pretrained('org/td-detr-qvh')\n"
        "base = AutoModel.from_pretrained('org/td-detr-qvh')\n"
        "with torch.no_grad():\n"
        "    logits = model(**torch.load('batch.pt')).logits\n"
        "print(json.dumps({'base': type(base).__name__, 'logits': logits.tolist()}))\n"
    )
    env = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": UNREACHABLE}
    result = run_python(["-c", script], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["base"] == "TDDetrModel"
    torch.testing.assert_close(torch.tensor(answer["logits"]), expected, rtol=1e-5, atol=1e-6)
