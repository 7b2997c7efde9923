import torch

from td_detr.span_utils import (
    generalized_temporal_iou,
    inverse_sigmoid,
    span_cxw_to_xx,
    span_xx_to_cxw,
    temporal_iou,
)


def test_hand_computed_iou_and_giou():
    a = torch.tensor([[0.0, 4.0]])
    b = torch.tensor([[2.0, 6.0], [4.0, 5.0], [10.0, 12.0], [0.0, 4.0], [1.0, 2.0]])
    iou, union = temporal_iou(a, b)
    assert torch.allclose(iou[0], torch.tensor([2 / 6, 0.0, 0.0, 1.0, 1 / 4]))
    assert torch.allclose(union[0], torch.tensor([6.0, 5.0, 6.0, 4.0, 4.0]))
    giou = generalized_temporal_iou(a, b)
    # disjoint [0,4] and [10,12]: hull 12, union 6 → 0 − 6/12
    assert torch.allclose(giou[0], torch.tensor([2 / 6, 0.0, -0.5, 1.0, 1 / 4]))


def test_iou_symmetry_and_range():
    generator = torch.Generator().manual_seed(0)
    start = torch.rand(20, generator=generator)
    spans = torch.stack((start, start + torch.rand(20, generator=generator)), dim=1)
    iou, _ = temporal_iou(spans, spans)
    giou = generalized_temporal_iou(spans, spans)
    assert torch.allclose(iou, iou.T) and torch.allclose(giou, giou.T)
    assert (iou >= 0).all() and (iou <= 1).all() and (giou >= -1).all() and (giou <= 1).all()
    assert torch.allclose(torch.diagonal(iou), torch.ones(20))
    assert (giou <= iou + 1e-6).all()


def test_zero_length_spans_have_zero_iou():
    point = torch.tensor([[3.0, 3.0]])
    iou, _ = temporal_iou(point, point)
    assert iou.item() == 0.0
    assert torch.isfinite(generalized_temporal_iou(point, torch.tensor([[1.0, 2.0]]))).all()


def test_conversions_round_trip():
    spans = torch.tensor([[0.5, 0.2], [0.1, 0.05]])
    assert torch.allclose(span_xx_to_cxw(span_cxw_to_xx(spans)), spans)
    assert torch.allclose(span_cxw_to_xx(spans)[0], torch.tensor([0.4, 0.6]))
    assert torch.allclose(inverse_sigmoid(torch.tensor([0.25, 0.5])).sigmoid(), torch.tensor([0.25, 0.5]))
