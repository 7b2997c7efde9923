"""td_detr.dropout: the cheap CPU mask keeps each entry with probability 1 - p, independently, scales by 1/(1-p),
passes gradients through the kept entries only, and attention_with_dropout equals SDPA when nothing is dropped."""

import math

import pytest
import torch
import torch.nn.functional as F

from td_detr.dropout import FastDropout, attention_with_dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate_matches_p(p):
    torch.manual_seed(0)
    mask = keep_mask((200, 1000), p)
    n = mask.numel()
    expected = 1 - round(p * 2**15) / 2**15
    # 6 binomial standard deviations: fails for a biased lane, passes for the right rate.
    assert abs(mask.float().mean().item() - expected) < 6 * math.sqrt(expected * (1 - expected) / n)


def test_lanes_are_uncorrelated():
    # The four 16-bit lanes of one random word must be independent (and the sign-bit lane not special).
    torch.manual_seed(1)
    mask = keep_mask((100_000, 4), 0.5).float()
    rates = mask.mean(0)
    assert torch.all((rates - 0.5).abs() < 0.01)
    corr = torch.corrcoef(mask.T)
    assert (corr - torch.eye(4)).abs().max() < 0.02
    # Neighbouring elements (same word and across words) are not correlated either.
    flat = mask.flatten()
    assert abs(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1]) < 0.01


def test_dropout_scales_kept_values_and_routes_gradients():
    torch.manual_seed(2)
    x = torch.randn(7, 33, 5, requires_grad=True)
    y = dropout(x, 0.3)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.7)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.7)


def test_seeded_masks_repeat_and_odd_sizes_work():
    torch.manual_seed(3)
    a = keep_mask((3, 5, 7), 0.2)  # 105 elements: not a multiple of the 4 lanes of a word
    torch.manual_seed(3)
    b = keep_mask((3, 5, 7), 0.2)
    assert a.shape == (3, 5, 7) and torch.equal(a, b)


def test_identity_cases_and_module():
    x = torch.randn(4, 6)
    assert dropout(x, 0.5, training=False) is x and dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    module = FastDropout(0.4)
    assert isinstance(module, torch.nn.Dropout) and module.p == 0.4
    module.eval()
    assert torch.equal(module(x), x)
    module.train()
    torch.manual_seed(4)
    out = module(torch.ones(10_000))
    assert torch.allclose(out[out > 0], torch.tensor(1 / 0.6)) and 0.55 < (out > 0).float().mean() < 0.65


def test_attention_without_dropout_equals_sdpa():
    torch.manual_seed(5)
    q, k, v = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 9, 8), torch.randn(2, 3, 9, 8)
    allowed = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    allowed[0, ..., 7:] = False
    ours = attention_with_dropout(q, k, v, allowed, 0.0)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    assert torch.allclose(ours, reference, atol=1e-6)


def test_attention_dropout_is_unbiased():
    # Dropping attention weights and rescaling keeps the expected output: the mean over many draws approaches SDPA.
    torch.manual_seed(6)
    q, k, v = torch.randn(1, 1, 4, 8), torch.randn(1, 1, 5, 8), torch.randn(1, 1, 5, 8)
    draws = torch.stack([attention_with_dropout(q, k, v, None, 0.5) for _ in range(4000)])
    reference = F.scaled_dot_product_attention(q, k, v)
    assert (draws.mean(0) - reference).abs().max() < 0.1
    assert (draws.std(0) > 0.05).all()  # and the weights really are dropped


def test_output_is_x_times_the_scale_exactly_where_kept():
    # Kept values are rounded once (x * 1/(1-p)), whatever order the mask and the scale are applied in.
    x = torch.randn(64, 75, 30)
    torch.manual_seed(7)
    mask = keep_mask(x.shape, 0.3)
    torch.manual_seed(7)
    assert torch.equal(dropout(x, 0.3), torch.where(mask, x * (1.0 / 0.7), torch.zeros(())))
