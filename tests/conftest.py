"""Test-wide settings and fixtures (helpers live in model_utils.py / training_utils.py: conftest modules of
sub-folders would shadow names imported from here)."""

from __future__ import annotations

import pytest
import torch

from model_utils import tiny_config

# Tests run tiny models: one intra-op thread is faster than two for such small matrices and does not collapse
# when the 2-core machine is shared with other work.
torch.set_num_threads(1)


@pytest.fixture
def config():
    return tiny_config()
