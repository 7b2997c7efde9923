"""Temporal spans: (centre, width) ↔ (start, end) conversions, IoU and generalised IoU.

All functions work on torch tensors whose last dimension holds the two span coordinates.
"""

from __future__ import annotations

import torch


def span_cxw_to_xx(spans: torch.Tensor) -> torch.Tensor:
    """(centre, width) → (start, end)."""
    centre, width = spans.unbind(-1)
    return torch.stack((centre - 0.5 * width, centre + 0.5 * width), dim=-1)


def span_xx_to_cxw(spans: torch.Tensor) -> torch.Tensor:
    """(start, end) → (centre, width)."""
    start, end = spans.unbind(-1)
    return torch.stack((0.5 * (start + end), end - start), dim=-1)


def temporal_iou(spans1: torch.Tensor, spans2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU of (start, end) spans: [N, 2] × [M, 2] → IoU [N, M] and union [N, M].

    Zero-length spans give IoU 0 against everything (0/0 is defined as 0).
    """
    lengths1 = spans1[:, 1] - spans1[:, 0]
    lengths2 = spans2[:, 1] - spans2[:, 0]
    left = torch.maximum(spans1[:, None, 0], spans2[None, :, 0])
    right = torch.minimum(spans1[:, None, 1], spans2[None, :, 1])
    inter = (right - left).clamp(min=0)
    union = lengths1[:, None] + lengths2[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
    return iou, union


def generalized_temporal_iou(spans1: torch.Tensor, spans2: torch.Tensor) -> torch.Tensor:
    """Pairwise generalised IoU (Rezatofighi et al., 2019) of (start, end) spans: [N, 2] × [M, 2] → [N, M] in [-1, 1].

    gIoU = IoU − (hull − union) / hull, with hull the smallest span covering both.
    """
    iou, union = temporal_iou(spans1, spans2)
    left = torch.minimum(spans1[:, None, 0], spans2[None, :, 0])
    right = torch.maximum(spans1[:, None, 1], spans2[None, :, 1])
    hull = (right - left).clamp(min=0)
    return torch.where(hull > 0, iou - (hull - union) / hull.clamp(min=1e-12), iou)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """logit(x) with x clamped to [eps, 1 − eps] first, as the DAB-DETR decoder does."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))
