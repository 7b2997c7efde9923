"""Config options seen through the whole model: the official T2V mask, text positions and the FFN activation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from td_detr import TDDetrForMomentRetrieval
from td_detr.transformer import FeedForward

from model_utils import random_batch, simple_labels, tiny_config


def build(seed=0, **overrides):
    torch.manual_seed(seed)
    return TDDetrForMomentRetrieval(tiny_config(**overrides)).eval()


def outputs_of(model, batch, row=None, clips=None):
    with torch.no_grad():
        out = model(**batch)
    pick = slice(None) if row is None else slice(row, row + 1)
    return out.logits[pick], out.pred_spans[pick], out.saliency_scores[pick, :clips]


def assert_same(a, b):
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a, b))


def assert_different(a, b):
    assert not all(torch.allclose(x, y, atol=1e-4) for x, y in zip(a, b))


def mixed_padding_batch(config):
    """Row 0 fully valid; row 1 with padded clips and tokens. With 2 heads the official mask gives head 1 of row 0
    the mask of row 1: valid (clip >= 6, token >= 4) pairs of row 0 get blocked."""
    batch = random_batch(config, batch=2, clips=10, tokens=6)
    batch["video_mask"][1, 6:] = 0
    batch["text_mask"][1, 4:] = 0
    return batch


@pytest.mark.parametrize("use_dynamics", [True, False], ids=["td-detr", "qd-detr"])
def test_official_t2v_mask_makes_a_sample_depend_on_its_batch(use_dynamics):
    paper = build(use_dynamics=use_dynamics)
    official = build(use_dynamics=use_dynamics, official_t2v_mask=True)
    official.load_state_dict(paper.state_dict())  # same weights: only the mask differs
    batch = mixed_padding_batch(paper.config)
    alone = {key: value[:1] for key, value in batch.items()}

    # Alone, a sample's own mask blocks only padded pairs: both models agree.
    assert_same(outputs_of(official, alone), outputs_of(paper, alone))
    # In the batch, the paper model still gives the sample-alone outputs; the official one does not.
    assert_same(outputs_of(paper, batch, row=0), outputs_of(paper, alone))
    assert_different(outputs_of(official, batch, row=0), outputs_of(official, alone))
    # Without padding the official mask blocks nothing.
    full = random_batch(paper.config, batch=2, clips=10, tokens=6)
    assert_same(outputs_of(official, full), outputs_of(paper, full))


def test_official_t2v_mask_reaches_the_training_loss():
    paper = build(official_t2v_mask=False)
    official = build(official_t2v_mask=True)
    official.load_state_dict(paper.state_dict())
    batch = mixed_padding_batch(paper.config)
    labels = simple_labels(2, 10)
    with torch.no_grad():
        losses = [model(**batch, labels=labels).loss for model in (paper, official)]
    assert not torch.allclose(*losses)


def test_text_positions_make_the_model_see_token_order():
    batch = random_batch(tiny_config(), batch=2, clips=8, tokens=6)
    shuffled = dict(batch, text_features=batch["text_features"][:, torch.tensor([3, 0, 5, 1, 4, 2])])
    without = build(use_text_position=False)
    assert without.model.text_position is None
    assert_same(outputs_of(without, shuffled), outputs_of(without, batch))  # a bag of tokens

    with_positions = build(use_text_position=True)
    table = with_positions.model.text_position
    assert table.weight.shape == (with_positions.config.max_query_length, with_positions.config.hidden_size)
    assert table.weight.abs().sum() > 0
    assert_different(outputs_of(with_positions, shuffled), outputs_of(with_positions, batch))


def test_text_position_table_is_trained_and_saved(tmp_path):
    model = build(use_text_position=True).train()
    batch = random_batch(model.config, batch=2, clips=10, tokens=6)
    model(**batch, labels=simple_labels(2, 10)).loss.backward()
    grad = model.model.text_position.weight.grad
    assert grad is not None and grad[:6].abs().sum() > 0 and grad[6:].abs().sum() == 0  # only the used rows
    model.save_pretrained(tmp_path)
    loaded = TDDetrForMomentRetrieval.from_pretrained(tmp_path)
    assert torch.equal(loaded.model.text_position.weight, model.model.text_position.weight)


ACTIVATIONS = {"prelu": nn.PReLU, "relu": nn.ReLU, "gelu": nn.GELU}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_each_activation_runs_in_every_feed_forward(name):
    model = build(activation_function=name).train()
    feed_forwards = [m for m in model.modules() if isinstance(m, FeedForward)]
    config = model.config
    assert len(feed_forwards) == config.t2v_layers + config.encoder_layers + config.decoder_layers
    assert all(type(m.activation) is ACTIVATIONS[name] for m in feed_forwards)
    batch = random_batch(config, batch=2, clips=10, tokens=6)
    model(**batch, labels=simple_labels(2, 10)).loss.backward()
    first = feed_forwards[0].linear1.weight.grad
    assert first is not None and torch.isfinite(first).all() and first.abs().sum() > 0


def test_activations_change_the_outputs():
    batch = random_batch(tiny_config(), batch=2, clips=8, tokens=6)
    outputs = {name: outputs_of(build(activation_function=name), batch) for name in ACTIVATIONS}
    assert_different(outputs["relu"], outputs["gelu"])
    assert_different(outputs["relu"], outputs["prelu"])  # PReLU starts with slope 0.25, not 0


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation_function"):
        tiny_config(activation_function="swish")
