"""Official QD-DETR / TD-DETR parameter names → ours.

Every parameter of our model is looked up under its official name (rules below, restated from reading the official
`model.py` / `transformer.py`); every official tensor must be used, except the few listed in
`KNOWN_UNUSED_OFFICIAL_TENSORS`. Anything else — a parameter of ours without an official tensor, an official tensor
without a place, a shape that disagrees — fails the conversion with the full list.

Official layout in brief (sequence-first modules, `nn.Sequential` input projections of `LinearLayer` blocks whose
LayerNorm is `LayerNorm` and whose Linear is `net.1`, the DAB-DETR attention with only an `out_proj`, one `nn.PReLU`
per transformer layer stored as `activation`, TD-DETR's start token as an `nn.Embedding(1, d)` named `video_embed`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..errors import TDDetrInputError

# Official tensors the official forward never reads for predictions; dropped on purpose (and listed in the model
# card). Pattern → reason.
KNOWN_UNUSED_OFFICIAL_TENSORS = {
    r"txt_position_embed\.(position_embeddings\.weight|LayerNorm\.weight|LayerNorm\.bias)": (
        "learned text position table and its LayerNorm; always built, read only with use_txt_pos=True "
        "(the released models use zeros, and the converter refuses use_txt_pos=True)"
    ),
    r"contrastive_align_projection_(query|txt|vid)\.(weight|bias)": (
        "projections of the training-only contrastive alignment loss (contrastive_align_loss=True); "
        "never used for spans, logits or saliency"
    ),
}

# Our parameter name → official name: the first matching rule rewrites the prefix; then FFN names are flattened.
_PREFIX_RULES = (
    (r"^model\.global_token$", "global_rep_token"),
    (r"^model\.global_position$", "global_rep_pos"),
    (r"^model\.anchors\.weight$", "query_embed.weight"),
    (r"^model\.dynamic_tokenizer\.start_token$", "video_embed.weight"),
    (r"^model\.video_projection\.(\d+)\.norm\.", r"input_vid_proj.\1.LayerNorm."),
    (r"^model\.video_projection\.(\d+)\.linear\.", r"input_vid_proj.\1.net.1."),
    (r"^model\.text_projection\.(\d+)\.norm\.", r"input_txt_proj.\1.LayerNorm."),
    (r"^model\.text_projection\.(\d+)\.linear\.", r"input_txt_proj.\1.net.1."),
    (r"^model\.t2v_layers\.(\d+)\.cross_attention\.", r"transformer.t2v_encoder.layers.\1.self_attn."),
    (r"^model\.t2v_layers\.(\d+)\.dynamics\.attention\.", r"transformer.t2v_encoder.layers.\1.self_attn_flow."),
    (r"^model\.t2v_layers\.(\d+)\.dynamics\.projection\.norms\.(\d+)\.",
     r"transformer.t2v_encoder.layers.\1.flow_proj.\2.LayerNorm."),
    (r"^model\.t2v_layers\.(\d+)\.dynamics\.projection\.linears\.(\d+)\.",
     r"transformer.t2v_encoder.layers.\1.flow_proj.\2.net.1."),
    (r"^model\.t2v_layers\.(\d+)\.", r"transformer.t2v_encoder.layers.\1."),
    (r"^model\.encoder_layers\.(\d+)\.self_attention\.", r"transformer.encoder.layers.\1.self_attn."),
    (r"^model\.encoder_layers\.(\d+)\.", r"transformer.encoder.layers.\1."),
    (r"^model\.decoder\.layers\.(\d+)\.self_attention\.", r"transformer.decoder.layers.\1.self_attn."),
    (r"^model\.decoder\.layers\.(\d+)\.cross_attention\.", r"transformer.decoder.layers.\1.cross_attn."),
    (r"^model\.decoder\.", "transformer.decoder."),
    (r"^class_head\.", "class_embed."),
    (r"^span_head\.", "span_embed."),
    (r"^saliency_clip_projection\.", "saliency_proj1."),
    (r"^saliency_global_projection\.", "saliency_proj2."),
)
_FEED_FORWARD = re.compile(r"\.feed_forward\.(linear1|linear2|activation)\.")

_TD_ONLY = re.compile(r"(^video_embed\.|\.self_attn_flow\.|\.flow_proj\.)")


def official_name(our_name: str) -> str:
    """The official state-dict key holding our parameter `our_name`."""
    for pattern, replacement in _PREFIX_RULES:
        name, count = re.subn(pattern, replacement, our_name, count=1)
        if count:
            return _FEED_FORWARD.sub(r".\1.", name)
    raise KeyError(f"no official name known for {our_name}")


def is_known_unused(official_key: str) -> bool:
    return any(re.fullmatch(pattern, official_key) for pattern in KNOWN_UNUSED_OFFICIAL_TENSORS)


@dataclass(frozen=True)
class OfficialLayout:
    """What an official state dict (checked against its options) says about the model's inputs and depths.

    The official video projection reads `[video (+TEF) (+audio)]`: the data loader appends the TEF to the video
    features and the QD-DETR audio model concatenates the audio block after that. Ours reads `[video, audio]` and
    appends the TEF last, so the first projection's input channels are reordered (LayerNorm statistics do not depend
    on channel order, so this is exact)."""

    video_width: int
    audio_width: int
    use_tef: bool
    text_width: int
    t2v_layers: int
    encoder_layers: int
    decoder_layers: int

    @property
    def video_feature_size(self) -> int:
        """Channels the user feeds to our model: video then audio, without the TEF."""
        return self.video_width - (2 if self.use_tef else 0)

    def video_channel_order(self) -> torch.Tensor | None:
        """Official input-channel index for each of our channels, or None when the order is the same."""
        if not (self.use_tef and self.audio_width):
            return None
        video = self.video_width - self.audio_width - 2
        order = list(range(video)) + list(range(video + 2, self.video_width)) + [video, video + 1]
        return torch.tensor(order)


def _count_layers(state: Mapping, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    indices = {int(match.group(1)) for key in state if (match := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def inspect_official_state_dict(state: Mapping, options: Mapping, source: str, where: str) -> OfficialLayout:
    """Read widths and depths off the official tensors and check them against the options."""
    for key in ("input_vid_proj.0.LayerNorm.weight", "input_txt_proj.0.LayerNorm.weight", "query_embed.weight"):
        if key not in state:
            raise TDDetrInputError(f"{where}: not a QD-DETR / TD-DETR state dict (no {key!r})")
    has_dynamics = any(_TD_ONLY.search(key) for key in state)
    if source == "qd-detr" and has_dynamics:
        raise TDDetrInputError(f"{where}: holds TD-DETR dynamics weights; convert it with --from td-detr-official")
    if source == "td-detr-official" and not has_dynamics:
        raise TDDetrInputError(f"{where}: has no TD-DETR dynamics weights (video_embed, flow_proj, self_attn_flow); "
                               "a QD-DETR checkpoint converts with --from qd-detr")

    depths = {
        "t2v_layers": _count_layers(state, "transformer.t2v_encoder.layers"),
        "enc_layers": _count_layers(state, "transformer.encoder.layers"),
        "dec_layers": _count_layers(state, "transformer.decoder.layers"),
    }
    # QD-DETR and TD-DETR build the T2V stack with enc_layers; CG-DETR-style options name it t2v_layers.
    expected = {
        "t2v_layers": int(options.get("t2v_layers") or options["enc_layers"]),
        "enc_layers": int(options["enc_layers"]),
        "dec_layers": int(options["dec_layers"]),
    }
    wrong = [f"{name}: options say {expected[name]}, weights have {depths[name]}"
             for name in depths if depths[name] != expected[name]]
    if wrong:
        raise TDDetrInputError(f"{where}: layer counts disagree with the options ({'; '.join(wrong)})")

    use_tef = "tef" in str(options["ctx_mode"])
    video_width = int(state["input_vid_proj.0.LayerNorm.weight"].shape[0])
    audio_width = 0
    if source == "qd-detr" and options.get("a_feat_dir"):
        if options.get("a_feat_dim") is None:
            raise TDDetrInputError(f"{where}: options name an audio feature dir (a_feat_dir) but no a_feat_dim")
        audio_width = int(options["a_feat_dim"])
    video_only = video_width - audio_width - (2 if use_tef else 0)
    if video_only <= 0:
        raise TDDetrInputError(f"{where}: video projection reads {video_width} channels, too few for "
                               f"a_feat_dim={audio_width} and ctx_mode={options['ctx_mode']!r}")
    v_feat_dim = options.get("v_feat_dim")
    # opt.json stores v_feat_dim before the TEF is counted in; the checkpoint's options after.
    if v_feat_dim is not None and int(v_feat_dim) not in {video_only, video_only + (2 if use_tef else 0)}:
        raise TDDetrInputError(f"{where}: v_feat_dim={v_feat_dim} disagrees with the video projection, which reads "
                               f"{video_width} channels (ctx_mode={options['ctx_mode']!r}, audio {audio_width})")
    text_width = int(state["input_txt_proj.0.LayerNorm.weight"].shape[0])
    t_feat_dim = options.get("t_feat_dim")
    if t_feat_dim is not None and int(t_feat_dim) != text_width:
        raise TDDetrInputError(f"{where}: t_feat_dim={t_feat_dim} but the text projection reads {text_width} channels")
    return OfficialLayout(video_width, audio_width, use_tef, text_width, *depths.values())


# Parameters indexed by the video-projection input channel (last dimension).
_VIDEO_INPUT_PARAMETERS = (
    "model.video_projection.0.norm.weight",
    "model.video_projection.0.norm.bias",
    "model.video_projection.0.linear.weight",
)


def _adapt(our_name: str, tensor: torch.Tensor, layout: OfficialLayout) -> torch.Tensor:
    """Reshape / reorder an official tensor for our parameter."""
    if our_name == "model.dynamic_tokenizer.start_token":
        return tensor.reshape(-1)  # nn.Embedding(1, d) → [d]
    order = layout.video_channel_order()
    if order is not None and our_name in _VIDEO_INPUT_PARAMETERS:
        return tensor.index_select(tensor.dim() - 1, order)  # LayerNorm vectors and Linear input columns
    return tensor


def convert_official_state_dict(
    state: Mapping[str, torch.Tensor], expected_shapes: Mapping[str, torch.Size], layout: OfficialLayout, where: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Our state dict from an official one. Returns (converted tensors, official keys dropped as known-unused).

    Raises `TDDetrInputError` listing every parameter of ours without an official tensor, every official tensor
    left over, and every shape mismatch."""
    converted, used, missing, mismatched = {}, set(), [], []
    for ours, shape in expected_shapes.items():
        theirs = official_name(ours)
        if theirs not in state:
            missing.append(f"{ours} (official {theirs})")
            continue
        tensor = _adapt(ours, state[theirs], layout)
        if tuple(tensor.shape) != tuple(shape):
            mismatched.append(f"{theirs} {tuple(state[theirs].shape)} → {ours} {tuple(shape)}")
            continue
        converted[ours] = tensor.detach().to(torch.float32).clone().contiguous()
        used.add(theirs)
    leftover = sorted(set(state) - used)
    dropped = [key for key in leftover if is_known_unused(key)]
    unmapped = [key for key in leftover if not is_known_unused(key)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} parameter(s) of ours have no official tensor: {', '.join(missing)}")
    if unmapped:
        problems.append(f"{len(unmapped)} official tensor(s) are not mapped: {', '.join(unmapped)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {', '.join(mismatched)}")
    if problems:
        raise TDDetrInputError(f"{where}: cannot convert: " + " | ".join(problems))
    return converted, dropped
