import pytest
import torch
from transformers import AutoConfig, AutoModel

from td_detr import TDDetrConfig, TDDetrForMomentRetrieval, TDDetrModel
from td_detr.modeling_td_detr import temporal_endpoint_features
from td_detr.position_encoding import video_position_embedding

from model_utils import random_batch, simple_labels, tiny_config

CONFIGS = {
    "td-detr": dict(),
    "td-detr-official-dynamics": dict(dynamics_with_position=True, dynamics_fusion="scaled"),
    "qd-detr": dict(use_dynamics=False),
}


def build(seed=0, **overrides):
    torch.manual_seed(seed)
    return TDDetrForMomentRetrieval(tiny_config(**overrides)).eval()


def valid_outputs(outputs, clips):
    return outputs.logits, outputs.pred_spans, outputs.saliency_scores[:, :clips]


@pytest.mark.parametrize("variant", CONFIGS)
def test_padding_clips_and_tokens_leaves_valid_outputs_unchanged(variant):
    model = build(**CONFIGS[variant])
    batch = random_batch(model.config, batch=2, clips=9, tokens=5)
    with torch.no_grad():
        reference = model(**batch, output_negative_saliency=True)
        padded = dict(
            video_features=torch.cat((batch["video_features"], torch.randn(2, 4, 12)), dim=1),
            video_mask=torch.cat((batch["video_mask"], torch.zeros(2, 4)), dim=1),
            text_features=torch.cat((batch["text_features"], torch.randn(2, 3, 8)), dim=1),
            text_mask=torch.cat((batch["text_mask"], torch.zeros(2, 3)), dim=1),
        )
        out = model(**padded, output_negative_saliency=True)
    for a, b in zip(valid_outputs(reference, 9), valid_outputs(out, 9)):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(reference.negative_saliency_scores, out.negative_saliency_scores[:, :9], atol=1e-5)


def test_sample_in_a_batch_equals_the_sample_alone():
    model = build()
    batch = random_batch(model.config, batch=3, clips=10, tokens=6)
    batch["video_mask"][1, 6:] = 0
    batch["text_mask"][1, 4:] = 0
    with torch.no_grad():
        together = model(**batch)
        alone = model(
            video_features=batch["video_features"][1:2, :6],
            video_mask=batch["video_mask"][1:2, :6],
            text_features=batch["text_features"][1:2, :4],
            text_mask=batch["text_mask"][1:2, :4],
        )
    assert torch.allclose(together.pred_spans[1], alone.pred_spans[0], atol=1e-5)
    assert torch.allclose(together.logits[1], alone.logits[0], atol=1e-5)
    assert torch.allclose(together.saliency_scores[1, :6], alone.saliency_scores[0], atol=1e-5)


def test_negative_pair_is_the_video_under_the_next_samples_text():
    model = build()
    batch = random_batch(model.config, batch=3)
    with torch.no_grad():
        outputs = model(**batch, output_negative_saliency=True)
        rolled = dict(batch)
        rolled["text_features"] = torch.roll(batch["text_features"], -1, dims=0)
        separate = model(**rolled)
    assert torch.allclose(outputs.negative_saliency_scores, separate.saliency_scores, atol=1e-5)
    assert not torch.allclose(outputs.negative_saliency_scores, outputs.saliency_scores, atol=1e-3)


def test_negative_pair_uses_the_given_row_and_rows_without_one_leave_the_loss():
    model = build()
    batch = random_batch(model.config, batch=3)
    index = torch.tensor([2, 0, -1])
    with torch.no_grad():
        outputs = model(**batch, negative_text_index=index, output_negative_saliency=True)
        paired = dict(batch, text_features=batch["text_features"][[2, 0, 2]])
        separate = model(**paired)
    assert torch.allclose(outputs.negative_saliency_scores[:2], separate.saliency_scores[:2], atol=1e-5)
    assert outputs.negative_pair_mask.tolist() == [1.0, 1.0, 0.0]
    # the row without a negative contributes no negative term, whatever its placeholder scores are
    labels = simple_labels(3, batch["video_mask"].shape[1])
    loss = model.criterion.saliency_loss(
        outputs.saliency_scores, outputs.negative_saliency_scores, outputs.video_mask, labels, outputs.negative_pair_mask
    )
    changed = outputs.negative_saliency_scores.clone()
    changed[2] += 50.0
    again = model.criterion.saliency_loss(
        outputs.saliency_scores, changed, outputs.video_mask, labels, outputs.negative_pair_mask
    )
    assert torch.allclose(loss, again)
    changed[1] += 50.0
    assert not torch.allclose(loss, model.criterion.saliency_loss(
        outputs.saliency_scores, changed, outputs.video_mask, labels, outputs.negative_pair_mask))


def test_output_shapes_and_ranges():
    model = build()
    batch = random_batch(model.config, batch=2, clips=7)
    with torch.no_grad():
        outputs = model(**batch)
    assert outputs.logits.shape == (2, 5, 2) and outputs.pred_spans.shape == (2, 5, 2)
    assert outputs.saliency_scores.shape == (2, 7)
    assert ((outputs.pred_spans > 0) & (outputs.pred_spans < 1)).all()
    assert len(outputs.auxiliary_outputs) == model.config.decoder_layers - 1
    assert outputs.negative_saliency_scores is None  # inference skips the negative pass
    assert outputs.loss is None


def test_dynamics_change_the_outputs_and_beta_one_removes_them():
    batch = random_batch(tiny_config(), batch=2)
    with torch.no_grad():
        with_dynamics = build(seed=1)(**batch)
        model = build(seed=1, dynamics_beta=1.0)
        beta_one = model(**batch)
        model.config.use_dynamics = False
        baseline = TDDetrForMomentRetrieval(model.config).eval()
        state = {k: v for k, v in model.state_dict().items() if "dynamic" not in k}
        baseline.load_state_dict(state)
        no_dynamics = baseline(**batch)
    assert not torch.allclose(with_dynamics.pred_spans, beta_one.pred_spans, atol=1e-4)
    # β = 1 with "residual" fusion: x = v + attn, exactly the QD-DETR layer
    assert torch.allclose(beta_one.pred_spans, no_dynamics.pred_spans, atol=1e-6)


def test_loss_backward_reaches_every_parameter():
    model = build()
    model.train()
    batch = random_batch(model.config, batch=4)
    outputs = model(**batch, labels=simple_labels(4, 10))
    assert set(outputs.loss_dict) >= {"loss_span", "loss_giou", "loss_label", "loss_saliency", "loss_span_0"}
    outputs.loss.backward()
    missing = {name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}
    # The first decoder layer's content input is all zeros (DAB-DETR), so these weights see no signal; their biases do.
    zero_input = {f"model.decoder.layers.0.sa_{name}_proj.weight" for name in ("qcontent", "kcontent", "v")}
    assert missing == zero_input


def test_wrong_feature_size_is_a_clear_error():
    model = build()
    batch = random_batch(model.config)
    batch["video_features"] = torch.randn(3, 10, 14)
    with pytest.raises(ValueError, match="video_feature_size=12"):
        model(**batch)


def test_tef_and_position_embedding_follow_each_samples_length():
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])
    tef = temporal_endpoint_features(mask)
    assert torch.allclose(tef[0], torch.tensor([[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]]))
    assert torch.allclose(tef[1], torch.tensor([[0, 0.5], [0.5, 1.0], [0, 0], [0, 0]]))
    pos = video_position_embedding(mask, 8)
    assert torch.allclose(pos[1, 1], video_position_embedding(torch.ones(1, 2), 8)[0, 1], atol=1e-6)
    # feature 0 is sin(2π·p/L), feature 1 cos of the same angle at the first frequency
    angle = torch.tensor(2 * torch.pi * 2 / 4)
    assert torch.allclose(pos[0, 1, :2], torch.stack((angle.sin(), angle.cos())), atol=1e-5)


def test_save_and_load_give_identical_outputs(tmp_path):
    model = build(seed=3)
    batch = random_batch(model.config)
    with torch.no_grad():
        before = model(**batch, output_negative_saliency=True)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "config.json").exists()
    loaded = TDDetrForMomentRetrieval.from_pretrained(tmp_path)
    assert not loaded.training
    loaded_state = loaded.state_dict()
    assert all(torch.equal(value, loaded_state[key]) for key, value in model.state_dict().items())
    with torch.no_grad():
        after = loaded(**batch, output_negative_saliency=True)
    # Same weights bit for bit, but the loaded ones sit in the (memory-mapped) file at offsets that are not 64-byte
    # aligned, so the SIMD kernels may sum in another order: equal to float rounding, not bitwise.
    for name in ("logits", "pred_spans", "saliency_scores", "negative_saliency_scores"):
        torch.testing.assert_close(getattr(after, name), getattr(before, name), rtol=0, atol=1e-6, msg=name)


def test_auto_classes_resolve(tmp_path):
    model = build()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), TDDetrConfig)
    backbone = AutoModel.from_pretrained(tmp_path)
    assert isinstance(backbone, TDDetrModel)
    assert torch.equal(backbone.anchors.weight, model.model.anchors.weight)


def test_fresh_initialisation_follows_the_official_scheme():
    model = TDDetrForMomentRetrieval(tiny_config())
    layer = model.model.t2v_layers[0]
    assert torch.all(layer.feed_forward.activation.weight == 0.25)
    assert torch.all(layer.norm1.weight == 1)
    assert torch.all(model.model.decoder.bbox_embed.layers[-1].bias == 0)
    assert model.model.global_token.std() > 0.3  # N(0, 1), not left as torch.empty
    bound = (6 / (16 + 32)) ** 0.5  # Xavier bound of a 16×32 FFN weight
    assert layer.feed_forward.linear1.weight.abs().max() <= bound


def test_negative_pass_projecting_each_text_once_matches_projecting_the_rolled_copy():
    """The negative pass indexes the B texts' key / value projections (`text_rows`) instead of projecting a rolled
    copy: the same math in another summation order, so equal to float rounding, gradients included."""
    model = build(seed=2).train()
    batch = random_batch(model.config, batch=3)
    inner = model.model
    video = inner.video_projection(torch.cat(
        (batch["video_features"], temporal_endpoint_features(batch["video_mask"])), dim=-1)).detach()
    text = inner.text_projection(batch["text_features"]).detach()
    video_pos = video_position_embedding(batch["video_mask"], model.config.hidden_size)
    rows = torch.tensor([0, 1, 2, 1, 2, 0])
    two = lambda x: x.repeat(2, *[1] * (x.dim() - 1))  # noqa: E731
    results = []
    for text_input, text_rows in ((text, rows), (text[rows], None)):
        model.zero_grad()
        torch.manual_seed(5)  # same dropout masks
        memory, global_memory = inner.encode(two(video), two(batch["video_mask"]), two(video_pos), text_input,
                                             batch["text_mask"][rows], text_rows=text_rows)
        (memory.square().mean() + global_memory.sum()).backward()
        results.append((memory.detach(), {n: p.grad.clone() for n, p in inner.named_parameters() if p.grad is not None}))
    (memory_a, grads_a), (memory_b, grads_b) = results
    torch.testing.assert_close(memory_a, memory_b, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and any("in_proj_weight" in name for name in grads_a)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6, msg=name)
