"""scripts/step_profile.py: the phases of a training step with their dispatched operations, on the CPU."""

from __future__ import annotations

import json

import pytest
from script_utils import load_script

pytestmark = pytest.mark.slow  # builds the benchmark's batches and runs three training steps


def test_step_profile_counts_every_phase_and_refuses_cuda_without_a_gpu(tmp_path, monkeypatch, capsys):
    module = load_script("step_profile")
    out = tmp_path / "profile.json"
    assert module.main(["--device", "cpu", "--size", "tiny", "--steps", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["phases"]) == list(module.PHASES)
    assert all(phase["ms"] > 0 and phase["operations"] > 0 for phase in result["phases"].values())
    assert result["operations"] == sum(phase["operations"] for phase in result["phases"].values())
    # the backward replays the forward's graph: it dispatches at least as many operations as the forward's model part
    assert result["phases"]["backward"]["operations"] > result["phases"]["collate"]["operations"]
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as error:
        module.main(["--device", "cuda"])
    assert error.value.code == 2 and "torch sees no CUDA GPU" in capsys.readouterr().err


def test_cuda_cpu_agreement_needs_a_gpu(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as error:
        load_script("cuda_cpu_agreement").main([])
    assert error.value.code == 2 and "needs a CUDA GPU" in capsys.readouterr().err
