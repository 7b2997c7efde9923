import pytest
import torch
import torch.nn.functional as F

from td_detr.losses import TDDetrLoss
from td_detr.modeling_td_detr import TDDetrMomentRetrievalOutput

from model_utils import simple_labels, tiny_config


def reference_saliency_loss(scores, negative, mask, labels, margin=0.2, tau=0.5):
    """Straight from reference-qd-detr.md §3.3, one threshold at a time and one sample at a time."""
    batch, length = scores.shape
    loss_negative = sum(
        sum(-torch.log(1 - torch.sigmoid(negative[b, i])) for i in range(length) if mask[b, i]) for b in range(batch)
    ) / batch
    all_scores = torch.cat((scores, negative), 1)
    all_mask = torch.cat((mask, mask), 1)
    all_labels = torch.zeros(batch, 2 * length)
    for b, label in enumerate(labels):
        all_labels[b, : len(label["saliency_all_labels"])] = label["saliency_all_labels"]
    masked = all_mask * all_scores + (1 - all_mask) * -1e3
    total_rank = 0.0
    for r in range(1, 12):
        positive = all_labels >= r
        if positive.sum() == 0:
            continue
        per_sample = []
        for b in range(batch):
            logits = masked[b] / tau
            logits = logits - logits.max()
            log_prob = logits - torch.log(logits.exp().sum() + 1e-6)
            count = positive[b].sum()
            mean = (positive[b] * log_prob * all_mask[b]).sum() / (count + 1e-6)
            per_sample.append(-mean if count > 0 else torch.tensor(0.0))
        total_rank = total_rank + torch.stack(per_sample).mean()
    total_rank = total_rank / 12
    hinge = 0.0
    for b, label in enumerate(labels):
        for p, n in zip(label["saliency_pos_labels"], label["saliency_neg_labels"]):
            hinge = hinge + torch.clamp(margin + scores[b, n] - scores[b, p], min=0)
    hinge = hinge / (batch * 2) * 2
    return hinge + total_rank + loss_negative


def test_saliency_loss_matches_the_reference_definition():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 10, generator=generator)
    negative = torch.randn(4, 10, generator=generator)
    mask = torch.ones(4, 10)
    mask[1, 7:] = 0
    labels = simple_labels(4, 10)
    labels[3]["saliency_all_labels"] = torch.zeros(10)  # a sample without positives
    loss = TDDetrLoss(tiny_config()).saliency_loss(scores, negative, mask, labels)
    assert loss.item() == pytest.approx(reference_saliency_loss(scores, negative, mask, labels).item(), rel=1e-5)


def test_moment_losses_match_hand_computation():
    config = tiny_config(num_queries=2, eos_coefficient=0.1)
    logits = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
    spans = torch.tensor([[[0.5, 0.4], [0.2, 0.1]]])
    labels = [{"spans": torch.tensor([[0.6, 0.4]])}]
    losses = TDDetrLoss(config).moment_losses(logits, spans, labels)
    # query 0 is matched (cheapest): L1 = mean(|0.5−0.6|, |0.4−0.4|), gIoU of (0.3,0.7) vs (0.4,0.8) = 0.3/0.5
    assert losses["loss_span"].item() == pytest.approx(0.05, abs=1e-6)
    assert losses["loss_giou"].item() == pytest.approx(1 - 0.6, abs=1e-6)
    ce0 = -F.log_softmax(logits[0, 0], 0)[0]
    ce1 = -F.log_softmax(logits[0, 1], 0)[1] * 0.1
    assert losses["loss_label"].item() == pytest.approx(((ce0 + ce1) / 2).item(), abs=1e-6)


def test_total_is_the_weighted_sum_and_empty_targets_are_finite():
    config = tiny_config(num_queries=3, decoder_layers=2)
    generator = torch.Generator().manual_seed(1)
    make = lambda: dict(logits=torch.randn(2, 3, 2, generator=generator), pred_spans=torch.rand(2, 3, 2, generator=generator))
    main, auxiliary = make(), make()
    outputs = TDDetrMomentRetrievalOutput(
        **main,
        saliency_scores=torch.randn(2, 10, generator=generator),
        negative_saliency_scores=torch.randn(2, 10, generator=generator),
        video_mask=torch.ones(2, 10),
        auxiliary_outputs=[{"logits": auxiliary["logits"], "pred_spans": auxiliary["pred_spans"]}],
    )
    labels = simple_labels(2, 10)
    labels[1]["spans"] = torch.zeros(0, 2)
    criterion = TDDetrLoss(config)
    total, unweighted = criterion(outputs, labels)
    assert set(unweighted) == {"loss_span", "loss_giou", "loss_label", "loss_saliency", "loss_span_0", "loss_giou_0", "loss_label_0"}
    weights = criterion.weight_dict
    assert total.item() == pytest.approx(sum(v.item() * weights[k] for k, v in unweighted.items()), rel=1e-6)
    raw = criterion.moment_losses(main["logits"], main["pred_spans"], labels)
    assert unweighted["loss_giou"].item() == raw["loss_giou"].item() and weights["loss_giou"] == config.giou_loss_weight
    assert all(torch.isfinite(v) for v in unweighted.values())


def test_loss_issues_as_many_operations_for_64_rows_as_for_4():
    """On a GPU every tensor operation is a kernel launch: the loss's label bookkeeping (matching, targets, saliency
    labels) is done for the whole batch at once, so its operation count does not grow with the rows. It grew by ~14
    operations a row when the targets and saliency labels were gathered row by row."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    class CountOperations(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.count = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count[func] += 1
            return func(*args, **(kwargs or {}))

    config = tiny_config()
    criterion = TDDetrLoss(config)

    def operations(batch: int) -> int:
        generator = torch.Generator().manual_seed(batch)
        clips, queries, layers = 10, config.num_queries, config.decoder_layers
        outputs = TDDetrMomentRetrievalOutput(
            logits=torch.randn(batch, queries, 2, generator=generator),
            pred_spans=torch.rand(batch, queries, 2, generator=generator) * 0.5 + 0.1,
            saliency_scores=torch.randn(batch, clips, generator=generator),
            negative_saliency_scores=torch.randn(batch, clips, generator=generator),
            video_mask=torch.ones(batch, clips),
            auxiliary_outputs=[{"logits": torch.randn(batch, queries, 2, generator=generator),
                                "pred_spans": torch.rand(batch, queries, 2, generator=generator) * 0.5 + 0.1}
                               for _ in range(layers - 1)],
        )
        labels, counter = simple_labels(batch, clips), CountOperations()
        with counter:
            criterion(outputs, labels)
        return sum(counter.count.values())

    assert operations(64) == operations(4)
