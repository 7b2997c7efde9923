"""scripts/benchmark_dropout.py: the dry run prints both arms and their ratio (the switch itself is tested in
tests/test_model_contract.py)."""

from __future__ import annotations

import re

import pytest
from script_utils import load_script



@pytest.fixture(scope="module")
def script():
    return load_script("benchmark_dropout")


def test_dry_run_prints_both_arms(script, capsys):
    assert script.main(["--dry-run", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    medians = [float(m) for m in re.findall(r"train step median ([0-9.e+-]+) s", out)]
    ratio = float(re.search(r"ratio torch / td_detr dropout: ([0-9.]+)", out).group(1))
    assert len(medians) == 2 and all(m > 0 for m in medians)
    # Medians are printed to 4 significant digits (ratio error <= 0.1%), the ratio to 3 decimals.
    assert ratio == pytest.approx(medians[1] / medians[0], rel=0.002, abs=0.001)
