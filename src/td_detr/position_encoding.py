"""Sine position embeddings: of clip positions (video tokens) and of span anchors (decoder queries).

Computed on the fly from the mask / anchors rather than stored as buffers, so nothing goes stale after
`from_pretrained` (which rebuilds non-persistent buffers uninitialised).
"""

from __future__ import annotations

import math

import torch


def _frequencies(num_features: int, temperature: float, device, dtype=torch.float32) -> torch.Tensor:
    index = torch.arange(num_features, device=device, dtype=dtype)
    return temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / num_features)


def _interleave_sin_cos(angles: torch.Tensor) -> torch.Tensor:
    """[..., F] angles → [..., F] with sin at even and cos at odd feature indices."""
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)


def video_position_embedding(
    video_mask: torch.Tensor, num_features: int, temperature: float = 10000.0
) -> torch.Tensor:
    """DETR-style normalised 1-D sine embedding of clip positions: [B, L] mask (1 valid) → [B, L, num_features].

    The position of clip i is the running count of valid clips up to i, divided by the sample's number of valid
    clips and scaled to (0, 2π]; padded clips repeat the last valid position, so the valid part of the embedding does
    not depend on how much padding follows.
    """
    mask = video_mask.to(torch.float32)
    position = mask.cumsum(dim=1)
    position = position / (position[:, -1:] + 1e-6) * (2 * math.pi)
    angles = position[..., None] / _frequencies(num_features, temperature, mask.device)
    return _interleave_sin_cos(angles)


def anchor_sine_embedding(anchors: torch.Tensor, hidden_size: int, temperature: float = 10000.0) -> torch.Tensor:
    """Sine embedding of (centre, width) anchors in [0, 1]: [..., 2] → [..., hidden_size], centre half first."""
    frequencies = _frequencies(hidden_size // 2, temperature, anchors.device, anchors.dtype)
    angles = anchors[..., None] * (2 * math.pi) / frequencies  # [..., 2, hidden/2]
    return _interleave_sin_cos(angles).flatten(-2)
