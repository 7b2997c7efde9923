"""Dropout whose mask is cheap to draw on CPU.

`nn.Dropout` on CPU draws its mask with `bernoulli_`: one Mersenne-Twister draw and a float compare per element. At
QVHighlights sizes that was about a third of a QD-DETR training step (the 0.5 input dropout alone covers 32 x 75 x
2818 values). Here the mask comes from 64-bit random words cut into four 16-bit lanes, each lane's low 15 bits
compared with round(p * 2^15): four elements per two 32-bit draws, and a keep probability exact to 2^-15 (e.g.
p = 0.1 keeps 0.89999). Kept values are scaled by 1 / (1 - p), as in `nn.Dropout`. Masks follow torch's global
generator, so `torch.manual_seed` makes them reproducible. Off the CPU (CUDA's fused dropout is already fast) these
defer to torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_LANE_LEVELS = 1 << 15  # random levels per lane: the low 15 bits of each 16-bit lane


def keep_mask(shape, p: float) -> torch.Tensor:
    """Boolean CPU tensor of `shape`, each entry True with probability 1 - round(p * 2^15) / 2^15, independently."""
    count = math.prod(shape)
    # random_() on int64 fills [0, 2^63 - 1]: every 16-bit lane's low 15 bits are uniform (the top lane's sign
    # bit is always 0, so the sign bit is masked off everywhere).
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_()
    lanes = words.view(torch.int16)[:count].view(shape)
    return lanes.bitwise_and(_LANE_LEVELS - 1) >= round(p * _LANE_LEVELS)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`F.dropout(x, p, training)` with the cheaper CPU mask (see the module docstring)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training)
    if p >= 1.0:
        return x * 0.0
    # One float factor (0 or 1/(1-p)) serves forward and backward; multiplying by the bool mask instead converts
    # it to float in each direction (20-25% slower; same result: either way a kept value is rounded once, x/(1-p)).
    return x * keep_mask(x.shape, p).to(x.dtype).mul_(1.0 / (1.0 - p))


class FastDropout(nn.Dropout):
    """Drop-in `nn.Dropout` (same `p`, same `inplace`-free behaviour) with the cheaper CPU mask. Attention modules
    holding one apply it to their weights through [`attention_with_dropout`]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


# `TDDetrConfig.dropout_implementation` → the module class every dropout of the model uses.
DROPOUT_IMPLEMENTATIONS = {"torch": nn.Dropout, "fast_cpu": FastDropout}


def attention_with_dropout(query, key, value, allowed: torch.Tensor | None, p: float, scale: float | None = None):
    """softmax(q kᵀ · scale, masked) with dropout on the weights, then · v: what SDPA's math path computes when
    `dropout_p > 0` (SDPA's CPU kernels have no dropout), with the cheaper mask. `allowed`: True where a query may
    attend a key (broadcastable to [B, H, Lq, Lk]); every query must keep at least one key."""
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(query, key.transpose(-2, -1)).mul_(scale)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = dropout(torch.softmax(scores, dim=-1), p)
    return torch.matmul(weights, value)
