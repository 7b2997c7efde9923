from itertools import permutations

import pytest
import torch

from td_detr.matcher import HungarianMatcher


def brute_force_minimum(cost: torch.Tensor) -> float:
    rows, cols = cost.shape
    return min(sum(cost[r, c].item() for c, r in enumerate(perm)) for perm in permutations(range(rows), cols))


@pytest.mark.parametrize("seed", range(8))
def test_matching_is_optimal(seed):
    generator = torch.Generator().manual_seed(seed)
    batch, queries = 3, 5
    logits = torch.randn(batch, queries, 2, generator=generator)
    spans = torch.rand(batch, queries, 2, generator=generator) * 0.5 + 0.1
    labels = [{"spans": torch.rand(n, 2, generator=generator) * 0.5 + 0.1} for n in (1, 3, 5)]
    matcher = HungarianMatcher(class_cost=4, span_cost=10, giou_cost=1)
    indices = matcher(logits, spans, labels)
    targets = torch.cat([label["spans"] for label in labels])
    cost = matcher.cost_matrix(logits, spans, targets)
    offset = 0
    for sample, ((rows, cols), label) in enumerate(zip(indices, labels)):
        n = len(label["spans"])
        block = cost[sample, :, offset : offset + n]
        offset += n
        assert len(rows) == len(cols) == n
        assert sorted(cols.tolist()) == list(range(n))
        assert len(set(rows.tolist())) == n
        assert block[rows, cols].sum().item() == pytest.approx(brute_force_minimum(block), abs=1e-5)


def test_cost_terms_match_their_definitions():
    logits = torch.tensor([[[2.0, 0.0]]])
    spans = torch.tensor([[[0.5, 0.4]]])  # (0.3, 0.7)
    target = torch.tensor([[0.6, 0.4]])  # (0.4, 0.8)
    cost = HungarianMatcher(class_cost=4, span_cost=10, giou_cost=1).cost_matrix(logits, spans, target)
    foreground = torch.tensor([2.0, 0.0]).softmax(0)[0]
    l1 = 0.1
    iou = 0.3 / 0.5
    giou = iou - (0.5 - 0.5) / 0.5
    assert cost.item() == pytest.approx(10 * l1 - giou - 4 * foreground.item(), abs=1e-5)


def test_empty_targets():
    logits = torch.randn(2, 4, 2)
    spans = torch.rand(2, 4, 2)
    labels = [{"spans": torch.zeros(0, 2)}, {"spans": torch.tensor([[0.5, 0.2]])}]
    indices = HungarianMatcher()(logits, spans, labels)
    assert len(indices[0][0]) == 0 and len(indices[1][0]) == 1
    all_empty = HungarianMatcher()(logits, spans, [{"spans": torch.zeros(0, 2)}] * 2)
    assert all(len(rows) == 0 for rows, _ in all_empty)


def test_match_gives_the_pairs_of_every_sample_in_one_sample_major_array():
    generator = torch.Generator().manual_seed(3)
    logits, spans = torch.randn(4, 5, 2, generator=generator), torch.rand(4, 5, 2, generator=generator) * 0.5 + 0.1
    labels = [{"spans": torch.rand(n, 2, generator=generator) * 0.5 + 0.1} for n in (2, 0, 5, 1)]
    matcher = HungarianMatcher()
    per_sample = matcher(logits, spans, labels)
    targets = torch.cat([label["spans"] for label in labels])
    sample, prediction, target = matcher.match(logits, spans, targets, [2, 0, 5, 1])
    assert sample.tolist() == [0, 0, 2, 2, 2, 2, 2, 3]
    offsets = [0, 2, 2, 7]
    for i, (rows, cols) in enumerate(per_sample):
        assert prediction[sample == i].tolist() == rows.tolist()
        assert (target[sample == i] - offsets[i]).tolist() == cols.tolist()
    assert matcher.match(logits, spans, torch.zeros(0, 2), [0, 0, 0, 0]).shape == (3, 0)
