"""Conversion of official QD-DETR / TD-DETR checkpoints (td_detr.conversion, `td-detr convert`).

The official state dicts are synthesised from `official_parameter_shapes`, a list of (key, shape) restated from the
official `model.py` / `transformer.py` / `position_encoding.py` for given official options.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from td_detr import TDDetrForMomentRetrieval
from td_detr.cli import main
from td_detr.conversion import convert_official_checkpoint, load_official_checkpoint
from td_detr.errors import TDDetrInputError

QD_DEFAULTS = dict(
    hidden_dim=256, nheads=8, dim_feedforward=1024, enc_layers=2, dec_layers=2, num_queries=10, n_input_proj=2,
    max_q_l=32, v_feat_dim=2818, t_feat_dim=512, ctx_mode="video_tef", dropout=0.1, input_dropout=0.5,
    use_txt_pos=False, pre_norm=False, contrastive_align_loss=False, a_feat_dir=None, a_feat_dim=None,
    clip_length=2, max_v_l=75, set_cost_span=10, set_cost_giou=1, span_loss_coef=10, giou_loss_coef=1,
)
SMALL = dict(QD_DEFAULTS, dim_feedforward=64, v_feat_dim=22, t_feat_dim=12)


def official_parameter_shapes(opts: dict, td: bool = False):
    """Yield (key, shape) of every tensor in an official QD-DETR (td=False) or TD-DETR (td=True) state dict.
    `v_feat_dim` counts the TEF, as in the options stored in a checkpoint."""
    d, ff = opts["hidden_dim"], opts["dim_feedforward"]

    def linear(prefix, n_in, n_out):
        yield f"{prefix}.weight", (n_out, n_in)
        yield f"{prefix}.bias", (n_out,)

    def norm(prefix, n):
        yield f"{prefix}.weight", (n,)
        yield f"{prefix}.bias", (n,)

    def mlp(prefix, sizes):
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            yield from linear(f"{prefix}.layers.{i}", n_in, n_out)

    def torch_attention(prefix):  # nn.MultiheadAttention
        yield f"{prefix}.in_proj_weight", (3 * d, d)
        yield f"{prefix}.in_proj_bias", (3 * d,)
        yield from linear(f"{prefix}.out_proj", d, d)

    def feed_forward(prefix):
        yield from linear(f"{prefix}.linear1", d, ff)
        yield from linear(f"{prefix}.linear2", ff, d)
        yield f"{prefix}.activation.weight", (1,)  # nn.PReLU()

    yield "global_rep_token", (d,)
    yield "global_rep_pos", (d,)
    yield "query_embed.weight", (opts["num_queries"], 2)
    if td:
        yield "video_embed.weight", (1, d)
    yield "txt_position_embed.position_embeddings.weight", (opts["max_q_l"], d)
    yield from norm("txt_position_embed.LayerNorm", d)
    audio = opts["a_feat_dim"] if opts.get("a_feat_dir") else 0
    for name, width in (("input_txt_proj", opts["t_feat_dim"]), ("input_vid_proj", opts["v_feat_dim"] + audio)):
        for i in range(opts["n_input_proj"]):
            yield from norm(f"{name}.{i}.LayerNorm", width if i == 0 else d)
            yield from linear(f"{name}.{i}.net.1", width if i == 0 else d, d)
    yield from mlp("span_embed", [d, d, d, 2])
    yield from linear("class_embed", d, 2)
    yield from linear("saliency_proj1", d, d)
    yield from linear("saliency_proj2", d, d)
    if opts["contrastive_align_loss"]:
        for part in ("query", "txt", "vid"):
            yield from linear(f"contrastive_align_projection_{part}", d, 64)
    for i in range(opts.get("t2v_layers") or opts["enc_layers"]):
        prefix = f"transformer.t2v_encoder.layers.{i}"
        yield from torch_attention(f"{prefix}.self_attn")
        yield from feed_forward(prefix)
        yield from norm(f"{prefix}.norm1", d)
        yield from norm(f"{prefix}.norm2", d)
        if td:
            yield from torch_attention(f"{prefix}.self_attn_flow")
            for j in range(2):
                yield from norm(f"{prefix}.flow_proj.{j}.LayerNorm", d)
                yield from linear(f"{prefix}.flow_proj.{j}.net.1", d, d)
    for i in range(opts["enc_layers"]):
        prefix = f"transformer.encoder.layers.{i}"
        yield from torch_attention(f"{prefix}.self_attn")
        yield from feed_forward(prefix)
        yield from norm(f"{prefix}.norm1", d)
        yield from norm(f"{prefix}.norm2", d)
    for i in range(opts["dec_layers"]):
        prefix = f"transformer.decoder.layers.{i}"
        names = ["sa_qcontent_proj", "sa_qpos_proj", "sa_kcontent_proj", "sa_kpos_proj", "sa_v_proj",
                 "ca_qcontent_proj", "ca_kcontent_proj", "ca_kpos_proj", "ca_v_proj", "ca_qpos_sine_proj"]
        for name in names + (["ca_qpos_proj"] if i == 0 else []):  # later layers set ca_qpos_proj to None
            yield from linear(f"{prefix}.{name}", d, d)
        yield from linear(f"{prefix}.self_attn.out_proj", d, d)  # DAB-DETR attention: out_proj only
        yield from linear(f"{prefix}.cross_attn.out_proj", d, d)
        yield from feed_forward(prefix)
        for j in (1, 2, 3):
            yield from norm(f"{prefix}.norm{j}", d)
    yield from norm("transformer.decoder.norm", d)
    yield from mlp("transformer.decoder.query_scale", [d, d, d])
    yield from mlp("transformer.decoder.ref_point_head", [d, d, d])
    yield from mlp("transformer.decoder.bbox_embed", [d, d, d, 2])
    yield from mlp("transformer.decoder.ref_anchor_head", [d, d, 1])


def official_state_dict(opts, td=False, seed=0):
    generator = torch.Generator().manual_seed(seed)
    # small values, like trained weights: N(0, 1) everywhere drives the decoder's anchor widths to 0 (then inf / NaN)
    return {key: 0.05 * torch.randn(shape, generator=generator) for key, shape in official_parameter_shapes(opts, td)}


def save_checkpoint(path, state, opts, **extra):
    options = argparse.Namespace(**opts, device=torch.device("cpu"))
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0, 1]}]}
    torch.save({"model": state, "optimizer": optimizer, "epoch": 179, "opt": options, **extra}, path)
    return path


def convert(tmp_path, opts, td=False, state=None, name="model_best.ckpt", **kwargs):
    state = official_state_dict(opts, td) if state is None else state
    path = save_checkpoint(tmp_path / name, state, opts)
    return convert_official_checkpoint(path, "td-detr-official" if td else "qd-detr", **kwargs), state


def batch(config, lengths=(6, 4), tokens=(5, 3), seed=0):
    generator = torch.Generator().manual_seed(seed)
    clips, words = max(lengths), max(tokens)
    video_mask = (torch.arange(clips)[None] < torch.tensor(lengths)[:, None]).float()
    text_mask = (torch.arange(words)[None] < torch.tensor(tokens)[:, None]).float()
    return dict(
        video_features=torch.randn(len(lengths), clips, config.video_feature_size, generator=generator) * video_mask[..., None],
        video_mask=video_mask,
        text_features=torch.randn(len(lengths), words, config.text_feature_size, generator=generator) * text_mask[..., None],
        text_mask=text_mask,
    )


def test_qd_detr_default_layout_maps_every_tensor(tmp_path):
    result, state = convert(tmp_path, QD_DEFAULTS)
    config, ours = result.model.config, result.model.state_dict()
    assert (config.t2v_layers, config.encoder_layers, config.decoder_layers) == (2, 2, 2)
    assert (config.video_feature_size, config.text_feature_size, config.use_tef) == (2816, 512, True)
    assert not config.use_dynamics and config.synthesis_pairing == "none"
    assert (config.span_loss_weight, config.giou_loss_weight, config.matcher_span_cost) == (10.0, 1.0, 10.0)
    assert result.dropped == [
        "txt_position_embed.LayerNorm.bias", "txt_position_embed.LayerNorm.weight",
        "txt_position_embed.position_embeddings.weight",
    ]
    # every official tensor except the dropped ones landed somewhere, each exactly once
    assert len(ours) == len(state) - 3
    spot_checks = {
        "model.global_token": "global_rep_token",
        "model.anchors.weight": "query_embed.weight",
        "model.video_projection.0.norm.weight": "input_vid_proj.0.LayerNorm.weight",
        "model.text_projection.1.linear.weight": "input_txt_proj.1.net.1.weight",
        "model.t2v_layers.1.cross_attention.in_proj_weight": "transformer.t2v_encoder.layers.1.self_attn.in_proj_weight",
        "model.t2v_layers.0.feed_forward.activation.weight": "transformer.t2v_encoder.layers.0.activation.weight",
        "model.encoder_layers.1.self_attention.out_proj.bias": "transformer.encoder.layers.1.self_attn.out_proj.bias",
        "model.encoder_layers.0.feed_forward.linear2.weight": "transformer.encoder.layers.0.linear2.weight",
        "model.decoder.layers.0.ca_qpos_proj.weight": "transformer.decoder.layers.0.ca_qpos_proj.weight",
        "model.decoder.layers.1.cross_attention.out_proj.weight": "transformer.decoder.layers.1.cross_attn.out_proj.weight",
        "model.decoder.layers.1.norm3.bias": "transformer.decoder.layers.1.norm3.bias",
        "model.decoder.bbox_embed.layers.2.weight": "transformer.decoder.bbox_embed.layers.2.weight",
        "model.decoder.ref_anchor_head.layers.1.bias": "transformer.decoder.ref_anchor_head.layers.1.bias",
        "class_head.weight": "class_embed.weight",
        "span_head.layers.2.bias": "span_embed.layers.2.bias",
        "saliency_clip_projection.weight": "saliency_proj1.weight",
        "saliency_global_projection.bias": "saliency_proj2.bias",
    }
    for our_key, official_key in spot_checks.items():
        assert torch.equal(ours[our_key], state[official_key]), our_key
    assert "model.decoder.layers.1.ca_qpos_proj.weight" not in ours


@pytest.mark.parametrize(
    "overrides",
    [
        dict(enc_layers=3, dec_layers=4, num_queries=7, n_input_proj=3, contrastive_align_loss=True),
        dict(enc_layers=1, dec_layers=3, n_input_proj=1, v_feat_dim=40, t_feat_dim=300, t2v_layers=2),
    ],
    ids=["3-4-layers-contrastive", "cg-detr-style-t2v"],
)
def test_other_depths_and_feature_sizes(tmp_path, overrides):
    opts = dict(SMALL, **overrides)
    result, state = convert(tmp_path, opts)
    config, ours = result.model.config, result.model.state_dict()
    assert config.t2v_layers == overrides.get("t2v_layers", overrides["enc_layers"])
    assert (config.encoder_layers, config.decoder_layers) == (overrides["enc_layers"], overrides["dec_layers"])
    assert config.video_feature_size == opts["v_feat_dim"] - 2 and config.text_feature_size == opts["t_feat_dim"]
    assert config.num_input_projections == opts["n_input_proj"] and config.ffn_dim == 64
    last = config.decoder_layers - 1
    assert torch.equal(ours[f"model.decoder.layers.{last}.feed_forward.linear1.weight"],
                       state[f"transformer.decoder.layers.{last}.linear1.weight"])
    contrastive = [key for key in result.dropped if key.startswith("contrastive_align_projection")]
    assert len(contrastive) == (6 if opts["contrastive_align_loss"] else 0)
    assert len(ours) == len(state) - len(result.dropped)


def test_td_detr_official_layout(tmp_path):
    opts = dict(SMALL, enc_layers=4, dec_layers=4, beta=0.6)
    for name in ("set_cost_span", "set_cost_giou", "span_loss_coef", "giou_loss_coef"):
        opts.pop(name)  # missing options take the TD-DETR parser defaults (swapped span / gIoU weights)
    result, state = convert(tmp_path, opts, td=True)
    config, ours = result.model.config, result.model.state_dict()
    assert config.use_dynamics and config.dynamics_with_position and config.dynamics_fusion == "residual"
    assert config.dynamics_beta == 0.6 and config.t2v_layers == 4
    assert (config.span_loss_weight, config.giou_loss_weight, config.matcher_giou_cost) == (1.0, 10.0, 10.0)
    assert {"giou_loss_coef", "span_loss_coef"} <= set(result.defaulted_options)
    assert torch.equal(ours["model.dynamic_tokenizer.start_token"], state["video_embed.weight"][0])
    layer = "transformer.t2v_encoder.layers.3"
    assert torch.equal(ours["model.t2v_layers.3.dynamics.attention.in_proj_bias"], state[f"{layer}.self_attn_flow.in_proj_bias"])
    assert torch.equal(ours["model.t2v_layers.3.dynamics.projection.norms.1.weight"], state[f"{layer}.flow_proj.1.LayerNorm.weight"])
    assert torch.equal(ours["model.t2v_layers.3.dynamics.projection.linears.0.weight"], state[f"{layer}.flow_proj.0.net.1.weight"])
    assert len(ours) == len(state) - 3


def test_audio_channels_are_reordered_exactly(tmp_path):
    """Official input [video, TEF, audio]; ours [video, audio] + TEF appended: same first-block output."""
    opts = dict(SMALL, a_feat_dir="pann", a_feat_dim=10)
    result, state = convert(tmp_path, opts)
    model = result.model
    assert model.config.video_feature_size == 20 + 10 and result.layout.audio_width == 10
    generator = torch.Generator().manual_seed(3)
    video, tef, audio = (torch.randn(4, n, generator=generator) for n in (20, 2, 10))
    official_input = torch.cat((video, tef, audio), -1)
    official = torch.nn.functional.layer_norm(
        official_input, (32,), state["input_vid_proj.0.LayerNorm.weight"], state["input_vid_proj.0.LayerNorm.bias"]
    )
    official = torch.nn.functional.linear(official, state["input_vid_proj.0.net.1.weight"], state["input_vid_proj.0.net.1.bias"])
    ours = model.model.video_projection[0].linear(model.model.video_projection[0].norm(torch.cat((video, audio, tef), -1)))
    torch.testing.assert_close(ours, official, rtol=0, atol=1e-5)
    assert "Audio" in result.model_card and "cat([video (20), audio (10)]" in result.model_card


def test_save_reload_predicts_identically(tmp_path):
    result, _ = convert(tmp_path, SMALL, td=True, output_dir=tmp_path / "converted")
    assert {p.name for p in (tmp_path / "converted").iterdir()} >= {"model.safetensors", "config.json", "README.md"}
    reloaded = TDDetrForMomentRetrieval.from_pretrained(tmp_path / "converted")
    inputs = batch(result.model.config)
    with torch.no_grad():
        before, after = result.model(**inputs), reloaded(**inputs)
    for field in ("logits", "pred_spans", "saliency_scores"):
        torch.testing.assert_close(getattr(after, field), getattr(before, field), rtol=0, atol=0)
    assert torch.isfinite(before.pred_spans).all() and before.pred_spans.shape == (2, 10, 2)
    saved, kept = reloaded.config.to_dict(), result.model.config.to_dict()
    saved.pop("_name_or_path"), kept.pop("_name_or_path")
    assert saved == kept


def test_options_json_replaces_missing_checkpoint_options(tmp_path):
    state = official_state_dict(SMALL)
    torch.save({"model": state}, tmp_path / "bare.ckpt")
    with pytest.raises(TDDetrInputError, match="--opt"):
        convert_official_checkpoint(tmp_path / "bare.ckpt", "qd-detr")
    # opt.json is written before the official parser adds the TEF to v_feat_dim
    (tmp_path / "opt.json").write_text(json.dumps(dict(SMALL, v_feat_dim=20, enc_layers=2)))
    result = convert_official_checkpoint(tmp_path / "bare.ckpt", "qd-detr", options_path=tmp_path / "opt.json")
    assert result.model.config.video_feature_size == 20
    assert "opt.json" in result.model_card


def test_unmapped_and_missing_tensors_are_listed(tmp_path):
    state = official_state_dict(SMALL)
    state["transformer.extra_head.weight"] = torch.zeros(3)
    del state["saliency_proj2.bias"]
    with pytest.raises(TDDetrInputError) as error:
        convert(tmp_path, SMALL, state=state)
    message = str(error.value)
    assert "transformer.extra_head.weight" in message and "saliency_global_projection.bias" in message


@pytest.mark.parametrize(
    "source_is_td, state_is_td, overrides, match",
    [
        (False, True, {}, "--from td-detr-official"),
        (True, False, {}, "--from qd-detr"),
        (False, False, {"use_txt_pos": True}, "use_txt_pos"),
        (False, False, {"pre_norm": True}, "pre_norm"),
        (False, False, {"enc_layers": 3}, "enc_layers: options say 3, weights have 2"),
        (False, False, {"v_feat_dim": 99}, "v_feat_dim=99"),
    ],
)
def test_inconsistent_checkpoints_are_refused(tmp_path, source_is_td, state_is_td, overrides, match):
    state = official_state_dict(SMALL, td=state_is_td)
    path = save_checkpoint(tmp_path / "m.ckpt", state, dict(SMALL, **overrides))
    with pytest.raises(TDDetrInputError, match=match):
        convert_official_checkpoint(path, "td-detr-official" if source_is_td else "qd-detr")


class Payload:
    """A class no official checkpoint contains; unpickling it must be refused."""

    def __init__(self):
        self.note = "would run on load"


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_loading_refuses_unexpected_globals(tmp_path, zip_format):
    path = tmp_path / "evil.ckpt"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": Payload()}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(TDDetrInputError, match="refusing to unpickle global.*Payload"):
        load_official_checkpoint(path)


def test_loading_accepts_namespace_device_and_numpy_scalars(tmp_path):
    import numpy as np

    path = tmp_path / "ok.ckpt"
    options = argparse.Namespace(lr=np.float64(1e-4), seed=np.int64(2018), device=torch.device("cpu"))
    torch.save({"model": {"w": torch.ones(2)}, "opt": options}, path)
    loaded = load_official_checkpoint(path)
    assert loaded["opt"].seed == 2018 and torch.equal(loaded["model"]["w"], torch.ones(2))


def test_cli_end_to_end(tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "model_best.ckpt", official_state_dict(SMALL), SMALL)
    out = tmp_path / "qd-detr-small"
    assert main(["convert", "--from", "qd-detr", str(checkpoint), "--output-dir", str(out)]) == 0
    assert "dropped 3 unused official tensor(s)" in capsys.readouterr().out
    card = (out / "README.md").read_text()
    assert "https://github.com/wjun0830/QD-DETR" in card and "model_best.ckpt" in card and "epoch 179" in card
    assert "txt_position_embed.position_embeddings.weight" in card
    assert json.loads((out / "config.json").read_text())["use_dynamics"] is False

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint")
    assert main(["convert", "--from", "qd-detr", str(garbage), "--output-dir", str(tmp_path / "x")]) == 2
    assert "garbage.ckpt" in capsys.readouterr().err
