"""Hungarian matching between predicted moments and ground-truth windows (DETR set prediction).

Cost = span_cost · L1(centre, width) − giou_cost · gIoU(start, end) − class_cost · p(foreground), solved per sample
with `scipy.optimize.linear_sum_assignment`. The cost matrices of the whole batch are computed in one go.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from .span_utils import generalized_temporal_iou, span_cxw_to_xx


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

    def __call__(self, logits, pred_spans, labels: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per sample (prediction indices, target indices), both int64 and of equal length."""
        sizes = [len(label["spans"]) for label in labels]
        empty = torch.empty(0, dtype=torch.int64)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in sizes]
        targets = torch.cat([label["spans"].to(pred_spans.device) for label in labels])
        cost = self.cost_matrix(logits, pred_spans, targets).cpu()
        indices = []
        for sample, block in enumerate(cost.split(sizes, dim=-1)):
            if sizes[sample] == 0:
                indices.append((empty, empty))
                continue
            rows, cols = linear_sum_assignment(block[sample].numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return indices

