"""Test-wide settings and fixtures (helpers live in model_utils.py / training_utils.py: conftest modules of
sub-folders would shadow names imported from here)."""

from __future__ import annotations

import gc

import pytest
import torch

from model_utils import tiny_config

# Tests run tiny models: one intra-op thread is faster than two for such small matrices and does not collapse
# when the 2-core machine is shared with other work.
torch.set_num_threads(1)


@pytest.fixture
def config():
    return tiny_config()


def pytest_collection_finish(session):
    """Every Trainer.train() ends in accelerate's free_memory(), a full gc.collect() that walks every object alive
    (~0.4 s with torch, transformers, gradio and hypothesis loaded; ~13 s of the quick suite). Objects alive once
    collection is done (the imported libraries and test modules) are moved out of the collector's reach."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config, items):
    """`cuda` tests need a CUDA GPU: without one they are deselected (not skipped), so a CPU run has no skips."""
    if torch.cuda.is_available():
        return
    kept = [item for item in items if item.get_closest_marker("cuda") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("cuda") is not None])
        items[:] = kept
