"""scripts/benchmark_dropout.py: its 'torch dropout' arm really routes td_detr's dropout to torch's (and back), and
the dry run prints both arms and their ratio."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from script_utils import load_script



@pytest.fixture(scope="module")
def script():
    return load_script("benchmark_dropout")


def test_torch_arm_uses_torch_dropout(script):
    from td_detr.attention import MultiheadAttention
    from td_detr.dropout import FastDropout

    layer, x = FastDropout(0.3), torch.ones(64, 64)
    torch.manual_seed(0)
    ours = layer(x)
    with script.torch_dropout():
        torch.manual_seed(0)
        routed = layer(x)
        attention = MultiheadAttention(8, 2, 0.5)
        q = torch.randn(2, 5, 8)
        torch.manual_seed(1)
        routed_attention = attention(q, q, q)
    torch.manual_seed(0)
    assert torch.equal(routed, F.dropout(x, 0.3, True)) and not torch.equal(ours, routed)
    torch.manual_seed(1)
    q_, k_, v_ = (t.view(2, 5, 2, 4).transpose(1, 2) for t in torch.nn.functional.linear(
        q, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1))
    expected = attention.out_proj(F.scaled_dot_product_attention(q_, k_, v_, dropout_p=0.5).transpose(1, 2).reshape(2, 5, 8))
    assert torch.allclose(routed_attention, expected, atol=1e-6)
    torch.manual_seed(0)
    assert torch.equal(layer(x), ours)  # restored after the context


def test_dry_run_prints_both_arms(script, capsys):
    assert script.main(["--dry-run", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    medians = [float(m) for m in re.findall(r"train step median ([0-9.e+-]+) s", out)]
    ratio = float(re.search(r"ratio torch / td_detr dropout: ([0-9.]+)", out).group(1))
    assert len(medians) == 2 and all(m > 0 for m in medians)
    # Medians are printed to 4 significant digits (ratio error <= 0.1%), the ratio to 3 decimals.
    assert ratio == pytest.approx(medians[1] / medians[0], rel=0.002, abs=0.001)
