"""Hungarian matching between predicted moments and ground-truth windows (DETR set prediction).

Cost = span_cost · L1(centre, width) − giou_cost · gIoU(start, end) − class_cost · p(foreground), solved per sample
with `scipy.optimize.linear_sum_assignment`. The cost matrices of the whole batch are computed in one go and
copied to the host once.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .span_utils import generalized_temporal_iou, span_cxw_to_xx


def concatenated_targets(labels: list[dict], device) -> tuple[torch.Tensor, list[int]]:
    """Every sample's target spans concatenated on `device`, and how many each sample has."""
    return torch.cat([label["spans"] for label in labels]).to(device), [len(label["spans"]) for label in labels]


class HungarianMatcher:
    """Assigns each ground-truth window to one prediction (at most min(num_queries, num_windows) pairs per sample)."""

    def __init__(self, class_cost: float = 4.0, span_cost: float = 1.0, giou_cost: float = 10.0):
        if class_cost == 0 and span_cost == 0 and giou_cost == 0:
            raise ValueError("HungarianMatcher: all costs are zero")
        self.class_cost = class_cost
        self.span_cost = span_cost
        self.giou_cost = giou_cost

    @classmethod
    def from_config(cls, config) -> "HungarianMatcher":
        return cls(config.matcher_class_cost, config.matcher_span_cost, config.matcher_giou_cost)

    @torch.no_grad()
    def cost_matrix(self, logits: torch.Tensor, pred_spans: torch.Tensor, target_spans: torch.Tensor) -> torch.Tensor:
        """[B, Q, 2] logits, [B, Q, 2] spans, [N, 2] concatenated target spans → [B, Q, N] cost."""
        batch, queries = logits.shape[:2]
        foreground = logits.flatten(0, 1).float().softmax(-1)[:, 0:1]  # [BQ, 1]
        spans = pred_spans.flatten(0, 1).float()
        targets = target_spans.float()
        cost = self.span_cost * torch.cdist(spans, targets, p=1)
        cost = cost - self.giou_cost * generalized_temporal_iou(span_cxw_to_xx(spans), span_cxw_to_xx(targets))
        cost = cost - self.class_cost * foreground
        return cost.view(batch, queries, -1)

    def match(self, logits, pred_spans, target_spans: torch.Tensor, sizes: list[int]) -> np.ndarray:
        """The matched pairs of the whole batch as one int64 array [3, M]: sample, prediction index and index into
        `target_spans` (the samples' target spans concatenated, `sizes[i]` of them for sample i), sample-major.
        One device-to-host copy of the cost matrices and no per-sample tensor operation: on a GPU each of those is a
        kernel launch, and a training step matches every decoder layer."""
        if sum(sizes) == 0:
            return np.zeros((3, 0), dtype=np.int64)
        cost = self.cost_matrix(logits, pred_spans, target_spans.to(pred_spans.device)).cpu().numpy()
        pairs, offset = [], 0
        for sample, size in enumerate(sizes):
            if size:
                rows, cols = linear_sum_assignment(cost[sample, :, offset : offset + size])
                pairs.append(np.stack([np.full_like(rows, sample), rows, cols + offset]))
            offset += size
        return np.concatenate(pairs, axis=1).astype(np.int64)

    def __call__(self, logits, pred_spans, labels: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per sample (prediction indices, target indices), both int64 and of equal length."""
        targets, sizes = concatenated_targets(labels, pred_spans.device)
        sample, prediction, target = self.match(logits, pred_spans, targets, sizes)
        offsets = np.cumsum([0] + sizes[:-1])
        return [(torch.from_numpy(prediction[sample == i]), torch.from_numpy(target[sample == i] - offsets[i]))
                for i in range(len(sizes))]
