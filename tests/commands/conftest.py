"""Fixtures of the command tests: per test module, a tiny synthetic data set with a tiny model config, and a model
trained on it for a few steps."""

import pytest

from td_detr.cli import main

from training_utils import make_tiny_synthetic, write_tiny_config


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """(root folder, synthetic data folder, tiny config.json)."""
    root = tmp_path_factory.mktemp("cli")
    data = make_tiny_synthetic(root / "data", size=24)
    config = write_tiny_config(root / "tiny.json")
    return root, data, config


@pytest.fixture(scope="module")
def trained(workspace):
    """A run folder trained for 3 steps: model, metrics, predictions, card, run.json."""
    root, data, config = workspace
    output = root / "run"
    code = main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config),
                 "--max-steps", "3", "--batch-size", "8", "--output-dir", str(output), "--cache-dir", str(root / "cache")])
    assert code == 0
    return output
