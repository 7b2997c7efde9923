"""TD-DETR training losses (reference-qd-detr.md §3; the paper's Eq. 7–9).

Moment losses per decoder layer, each layer with its own Hungarian matching: L1 and 1 − gIoU on the matched spans
(means over matched elements), and a 2-way cross-entropy over all queries (matched → foreground, index 0; the
background class weighted by `eos_coefficient`; plain mean over batch × queries). Highlight losses on the last layer
only, summed into `loss_saliency`: the margin ranking loss over (positive, negative) clip pairs, the rank-aware
contrastive loss over thresholds 1..11 (positive and negative-pair scores together, divided by 12), and the
negative-pair loss −log(1 − σ(s_neg)) summed over valid clips.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .matcher import HungarianMatcher, concatenated_targets
from .span_utils import generalized_temporal_iou, span_cxw_to_xx

_RANK_THRESHOLDS = 11  # QVHighlights saliency labels are sums of 3 annotator scores (0..12)
_RANK_DIVISOR = 12.0  # the official code divides by 12, not by the number of active thresholds


def _stack_label(labels: list[dict], key: str, device) -> torch.Tensor:
    return torch.stack([torch.as_tensor(label[key]) for label in labels]).to(device=device, dtype=torch.int64)


def padded_saliency_labels(labels: list[dict], length: int, device) -> torch.Tensor:
    """[B, length] saliency labels, zero-padded (or cut, for the rare label one longer than the video). One copy into
    the padded tensor for the whole batch, not one per row (on a GPU, each is a kernel launch)."""
    values = [torch.as_tensor(label["saliency_all_labels"]) for label in labels]
    values = [value if len(value) <= length else value[:length] for value in values]
    lengths = [len(value) for value in values]
    flat_index = np.concatenate([row * length + np.arange(size) for row, size in enumerate(lengths)])
    out = torch.zeros(len(labels) * length, device=device)
    out[torch.from_numpy(flat_index).to(device)] = torch.cat(values).to(device=device, dtype=out.dtype)
    return out.view(len(labels), length)


class TDDetrLoss(nn.Module):
    """The loss terms of a [`TDDetrMomentRetrievalOutput`] against a list of label dicts, as transformers'
    `ForObjectDetectionLoss` returns them: the weighted total and the unweighted terms (auxiliary decoder layers'
    terms suffixed `_<layer>`); `weight_dict` holds every term's weight."""

    def __init__(self, config):
        super().__init__()
        self.matcher = HungarianMatcher.from_config(config)
        self.eos_coefficient = config.eos_coefficient
        self.margin = config.saliency_margin
        self.temperature = config.saliency_temperature
        self.use_auxiliary_loss = config.use_auxiliary_loss
        weights = {
            "loss_span": config.span_loss_weight,
            "loss_giou": config.giou_loss_weight,
            "loss_label": config.class_loss_weight,
            "loss_saliency": config.saliency_loss_weight,
        }
        self.weight_dict = dict(weights)
        if self.use_auxiliary_loss:
            for layer in range(config.decoder_layers - 1):
                self.weight_dict.update({f"{key}_{layer}": weights[key] for key in ("loss_span", "loss_giou", "loss_label")})

    def moment_losses(self, logits, pred_spans, labels, targets=None) -> dict[str, torch.Tensor]:
        """Unweighted L1, gIoU and classification losses of one decoder layer. `targets`: the labels'
        [`concatenated_targets`], when the caller already has them (every decoder layer uses the same)."""
        all_targets, sizes = targets if targets is not None else concatenated_targets(labels, pred_spans.device)
        pairs = self.matcher.match(logits, pred_spans, all_targets, sizes)
        batch_index, query_index, target_index = torch.from_numpy(pairs).to(pred_spans.device)
        matched = pred_spans[batch_index, query_index]
        targets = all_targets[target_index].to(pred_spans.dtype)
        if len(matched):
            loss_span = F.l1_loss(matched, targets)
            giou = generalized_temporal_iou(span_cxw_to_xx(matched), span_cxw_to_xx(targets))
            loss_giou = (1 - torch.diagonal(giou)).mean()
        else:  # no ground truth in the batch: nothing to regress
            loss_span = loss_giou = pred_spans.sum() * 0

        target_classes = torch.ones(logits.shape[:2], dtype=torch.int64, device=logits.device)
        target_classes[batch_index, query_index] = 0
        class_weight = torch.tensor([1.0, self.eos_coefficient], device=logits.device, dtype=logits.dtype)
        loss_label = F.cross_entropy(logits.transpose(1, 2), target_classes, class_weight, reduction="none").mean()
        return {"loss_span": loss_span, "loss_giou": loss_giou, "loss_label": loss_label}

    def saliency_loss(self, scores, negative_scores, video_mask, labels, negative_pair_mask=None) -> torch.Tensor:
        """Unweighted sum of the margin ranking, rank-aware contrastive and negative-pair losses. Rows whose
        `negative_pair_mask` is 0 (no valid negative query) leave their negative scores out of both negative terms."""
        mask = video_mask.to(scores.dtype)
        negative_mask = mask if negative_pair_mask is None else mask * negative_pair_mask.to(mask)[:, None]
        loss_negative = (F.softplus(negative_scores) * negative_mask).sum(dim=1).mean()  # = −log(1 − σ(s))

        all_scores = torch.cat((scores, negative_scores), dim=1)
        all_mask = torch.cat((mask, negative_mask), dim=1)
        saliency_labels = padded_saliency_labels(labels, scores.shape[1], scores.device)
        all_labels = torch.cat((saliency_labels, torch.zeros_like(saliency_labels)), dim=1)
        masked_scores = all_mask * all_scores + (1 - all_mask) * -1e3
        logits = masked_scores / self.temperature
        logits = logits - logits.max(dim=1, keepdim=True).values
        log_prob = logits - torch.log(logits.exp().sum(dim=1, keepdim=True) + 1e-6)
        thresholds = torch.arange(1, _RANK_THRESHOLDS + 1, device=scores.device, dtype=scores.dtype)
        positives = (all_labels.unsqueeze(0) >= thresholds[:, None, None]).to(scores.dtype)  # [R, B, 2L]
        mean_log_prob = (positives * log_prob * all_mask).sum(-1) / (positives.sum(-1) + 1e-6)  # [R, B]
        has_positive = (positives.sum(-1) > 0).to(scores.dtype)
        loss_rank = -(mean_log_prob * has_positive).mean(dim=1).sum() / _RANK_DIVISOR

        positive_index = _stack_label(labels, "saliency_pos_labels", scores.device)
        negative_index = _stack_label(labels, "saliency_neg_labels", scores.device)
        positive = scores.gather(1, positive_index)
        negative = scores.gather(1, negative_index)
        loss_margin = (self.margin + negative - positive).clamp(min=0).sum() / positive.numel() * 2
        return loss_margin + loss_rank + loss_negative

    def forward(self, outputs, labels: list[dict]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weighted total, unweighted terms)."""
        targets = concatenated_targets(labels, outputs.pred_spans.device)
        losses = self.moment_losses(outputs.logits, outputs.pred_spans, labels, targets)
        if outputs.negative_saliency_scores is not None and "saliency_pos_labels" in labels[0]:
            losses["loss_saliency"] = self.saliency_loss(
                outputs.saliency_scores, outputs.negative_saliency_scores, outputs.video_mask, labels,
                getattr(outputs, "negative_pair_mask", None),
            )
        if self.use_auxiliary_loss and outputs.auxiliary_outputs:
            for layer, auxiliary in enumerate(outputs.auxiliary_outputs):
                layer_losses = self.moment_losses(auxiliary["logits"], auxiliary["pred_spans"], labels, targets)
                for key, value in layer_losses.items():
                    losses[f"{key}_{layer}"] = value
        return sum(value * self.weight_dict[key] for key, value in losses.items()), losses
