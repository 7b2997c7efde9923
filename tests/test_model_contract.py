"""The transformers model contract: tuple outputs, strict keyword arguments, unweighted `loss_dict`, weight
initialisation by module type, and the dropout implementation switch."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from td_detr import TDDetrForMomentRetrieval
from td_detr.conversion.weights import official_name
from td_detr.dropout import DROPOUT_IMPLEMENTATIONS, FastDropout, dropout

from model_utils import random_batch, simple_labels, tiny_config


def build(seed=0, **overrides):
    torch.manual_seed(seed)
    return TDDetrForMomentRetrieval(tiny_config(**overrides))


def test_return_dict_false_gives_the_output_fields_as_a_tuple():
    model = build().eval()
    batch = random_batch(model.config, batch=4)
    labels = simple_labels(4, 10)
    with torch.no_grad():
        as_dict = model(**batch, labels=labels)
        as_tuple = model(**batch, labels=labels, return_dict=False)
        backbone_dict = model.model(**batch)
        backbone_tuple = model.model(**batch, return_dict=False)
    assert isinstance(as_tuple, tuple) and not isinstance(as_tuple, dict)
    expected = [value for value in as_dict.values()]
    assert len(as_tuple) == len(expected) and isinstance(as_tuple[0], torch.Tensor)
    assert torch.equal(as_tuple[0], as_dict.loss)
    assert as_tuple[1].keys() == as_dict.loss_dict.keys()
    for got, want in zip(as_tuple[2:], expected[2:]):
        if isinstance(want, torch.Tensor):
            assert torch.equal(got, want)
    assert len(backbone_tuple) == len(backbone_dict)
    assert all(torch.equal(a, b) for a, b in zip(backbone_tuple, backbone_dict.values()))
    model.config.return_dict = False  # the config default applies when the call does not say
    with torch.no_grad():
        assert isinstance(model(**batch), tuple)


def test_unknown_keyword_is_an_error_not_swallowed():
    model = build().eval()
    batch = random_batch(model.config)
    with pytest.raises(TypeError, match="meta"):
        model(**batch, meta=[{"qid": 1}] * 3)
    with pytest.raises(TypeError, match="meta"):
        model.model(**batch, meta=[{"qid": 1}] * 3)


def test_loss_dict_is_unweighted_and_the_weighted_sum_is_the_loss():
    labels = simple_labels(4, 10)
    losses = {}
    for giou_weight in (10.0, 3.0):
        model = build(giou_loss_weight=giou_weight).train()
        batch = random_batch(model.config, batch=4)
        torch.manual_seed(1)  # same dropout masks in both runs
        losses[giou_weight] = model(**batch, labels=labels)
    outputs, weights = losses[10.0], build(giou_loss_weight=10.0).criterion.weight_dict
    layers = ("", "_0")  # last decoder layer, then the auxiliary one (2 decoder layers)
    expected = {f"{key}{layer}" for key in ("loss_span", "loss_giou", "loss_label") for layer in layers}
    assert set(outputs.loss_dict) == expected | {"loss_saliency"} == set(weights)
    assert weights["loss_giou"] == weights["loss_giou_0"] == 10.0 and weights["loss_label_0"] == 4.0
    weighted = sum(value * weights[key] for key, value in outputs.loss_dict.items())
    assert torch.equal(weighted, outputs.loss)
    # A weight changes the total, never the raw terms.
    other = losses[3.0]
    for key, value in outputs.loss_dict.items():
        assert torch.equal(value, other.loss_dict[key]), key
    assert not torch.equal(outputs.loss, other.loss)


def _xavier_bound(weight):
    fan_out, fan_in = weight.shape[:2]
    return math.sqrt(6 / (fan_in + fan_out))


def test_initialisation_by_type_is_the_official_scheme():
    """Official QD-DETR / TD-DETR: `Transformer._reset_parameters` makes every ≥2-D parameter under `transformer.`
    Xavier-uniform; attention biases and the anchor refinement's last bias start at zero; the input projections and
    heads keep PyTorch's Linear default (Kaiming-uniform with a = √5, bound 1/√fan_in). Official names come from
    the checkpoint converter's mapping."""
    model = build(hidden_size=64, num_attention_heads=4, ffn_dim=128)
    xavier = []
    for name, parameter in model.named_parameters():
        official = official_name(name)
        values = parameter.detach()
        if parameter.dim() > 1 and official.startswith("transformer."):
            bound = _xavier_bound(values)
            xavier.append(name)
        elif parameter.dim() > 1 and name != "model.anchors.weight":
            bound = 1 / math.sqrt(values.shape[1])
        else:
            continue
        # Both are uniform in [-bound, bound]: thousands of draws reach within 3% of the bound.
        assert values.abs().max() <= bound, name
        assert values.abs().max() > 0.97 * bound, name
    assert any(".t2v_layers.0.dynamics.projection.linears." in n for n in xavier)
    assert any(".decoder.bbox_embed." in n for n in xavier)
    assert "model.decoder.bbox_embed.layers.2.weight" in xavier  # official: zero, then Xavier by the reset
    norms = {f"{name}.bias" for name, module in model.named_modules() if isinstance(module, nn.LayerNorm)}
    zero_biases = {name for name, p in model.named_parameters()
                   if name.endswith("bias") and name not in norms and torch.all(p == 0)}
    attention_biases = {name for name in dict(model.named_parameters())
                        if name.endswith(("in_proj_bias", "out_proj.bias")) and "attention" in name}
    # 2 layers each: T2V and dynamics (in_proj, out_proj), encoder (in_proj, out_proj), decoder self and cross (out_proj)
    assert len(attention_biases) == 2 * (2 + 2 + 2 + 2)
    assert zero_biases == attention_biases | {"model.decoder.bbox_embed.layers.2.bias"}


def test_loading_keeps_weights_that_the_initialisation_would_change(tmp_path):
    model = build()
    model.save_pretrained(tmp_path)
    loaded = TDDetrForMomentRetrieval.from_pretrained(tmp_path)
    for (name, value), (_, reloaded) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(value, reloaded), name


def _dropout_types(model):
    return {type(module) for module in model.modules() if isinstance(module, nn.Dropout)}


def test_dropout_implementation_flag_switches_every_dropout(tmp_path):
    model = build()
    assert _dropout_types(model) == {nn.Dropout}
    count = sum(isinstance(m, nn.Dropout) for m in model.modules())
    fast = build(dropout_implementation="fast_cpu")
    assert _dropout_types(fast) == {FastDropout}
    assert sum(isinstance(m, nn.Dropout) for m in fast.modules()) == count
    # the attention modules carry theirs (applied to the weights)
    assert isinstance(fast.model.t2v_layers[0].cross_attention.dropout, FastDropout)
    assert isinstance(fast.model.decoder.layers[0].cross_attention.dropout, FastDropout)
    # same parameters either way: the flag is an implementation choice, and it survives saving
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fast.state_dict().values()))
    fast.save_pretrained(tmp_path)
    assert _dropout_types(TDDetrForMomentRetrieval.from_pretrained(tmp_path)) == {FastDropout}
    switched = TDDetrForMomentRetrieval.from_pretrained(tmp_path, dropout_implementation="torch")
    assert _dropout_types(switched) == {nn.Dropout}
    model.train().set_dropout_implementation("fast_cpu")
    assert _dropout_types(model) == {FastDropout} and all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="dropout_implementation"):
        model.set_dropout_implementation("numpy")


def test_each_dropout_implementation_draws_its_own_masks_and_is_unbiased():
    x = torch.ones(400_000)
    expected = {}
    for name, function in (("torch", F.dropout), ("fast_cpu", dropout)):
        torch.manual_seed(0)
        expected[name] = function(x, 0.3)
    for name, dropout_class in DROPOUT_IMPLEMENTATIONS.items():
        layer = dropout_class(0.3).train()
        torch.manual_seed(0)
        out = layer(x)
        assert torch.equal(out, expected[name]), name
        kept = (out != 0).double().mean().item()
        # keep rate 0.7 within 5 standard errors; kept values scaled to keep the mean
        assert abs(kept - 0.7) < 5 * math.sqrt(0.7 * 0.3 / x.numel()), name
        assert abs(out.double().mean().item() - 1.0) < 5 * math.sqrt(0.3 / 0.7 / x.numel()), name
        assert torch.equal(layer.eval()(x), x)


def test_attention_dropout_follows_the_implementation():
    from td_detr.attention import MultiheadAttention
    from td_detr.dropout import attention_with_dropout

    attention = MultiheadAttention(8, 2, 0.5).train()
    query = torch.randn(2, 5, 8)
    q, k, v = (t.view(2, 5, 2, 4).transpose(1, 2) for t in F.linear(
        query, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1))
    merge = lambda x: attention.out_proj(x.transpose(1, 2).reshape(2, 5, 8))  # noqa: E731
    torch.manual_seed(1)
    with_torch = attention(query, query, query)
    torch.manual_seed(1)
    assert torch.allclose(with_torch, merge(F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)), atol=1e-6)
    attention.dropout = FastDropout(0.5)
    torch.manual_seed(1)
    with_fast = attention(query, query, query)
    torch.manual_seed(1)
    assert torch.allclose(with_fast, merge(attention_with_dropout(q, k, v, None, 0.5)), atol=1e-6)
    assert not torch.allclose(with_fast, with_torch)


def test_both_dropout_implementations_train_the_same_model_in_expectation():
    """Eval outputs do not depend on the implementation; training outputs differ only by the masks drawn."""
    labels = simple_labels(3, 10)
    results = {}
    for name in DROPOUT_IMPLEMENTATIONS:
        model = build(dropout_implementation=name)
        batch = random_batch(model.config)
        with torch.no_grad():
            results[name] = (model.eval()(**batch).pred_spans, model.train()(**batch, labels=labels).loss)
    assert torch.equal(results["torch"][0], results["fast_cpu"][0])
    assert torch.isfinite(results["torch"][1]) and torch.isfinite(results["fast_cpu"][1])


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    labels = simple_labels(3, 10)
    results = []
    for checkpointing in (False, True):
        model = build(dropout_implementation="fast_cpu").train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.model.t2v_layers)
        batch = random_batch(model.config)
        saved = []
        torch.manual_seed(3)  # dropout masks: recomputation must replay the same ones
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            outputs = model(**batch, labels=labels)
        outputs.loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        results.append((outputs.loss.detach(), grads, sum(saved)))
    (loss, grads, saved), (loss_checkpointed, grads_checkpointed, saved_checkpointed) = results
    assert saved_checkpointed < saved / 2  # the layers' activations are not kept
    assert torch.equal(loss, loss_checkpointed)
    assert grads.keys() == grads_checkpointed.keys()
    for name in grads:
        torch.testing.assert_close(grads_checkpointed[name], grads[name], rtol=1e-5, atol=1e-7, msg=name)
