"""Official training options (`opt`) → [`TDDetrConfig`].

The options are the argparse values of `qd_detr/config.py` (QD-DETR) or `td_detr/config.py` (TD-DETR). An option
missing from the checkpoint falls back to that parser's default, and the model card lists which ones did.
Feature widths are not taken from the options: the official `v_feat_dim` counts the TEF in the checkpoint's options
but not in `opt.json` (it is incremented after the file is written), so the converter reads the widths off the
input-projection weights and only cross-checks the options against them.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..configuration_td_detr import OFFICIAL_TD_DETR, TDDetrConfig
from ..errors import TDDetrInputError

SOURCES = ("qd-detr", "td-detr-official")

SOURCE_REPOSITORIES = {
    "qd-detr": "https://github.com/wjun0830/QD-DETR",
    "td-detr-official": "https://github.com/xyangzhou/TD-DETR",
}

# Defaults of the official argument parsers (restated). Both agree on everything except the span / gIoU weights,
# which TD-DETR swaps, and the TD-DETR-only β / α / pairing strategy.
_COMMON_DEFAULTS = dict(
    enc_layers=2,
    dec_layers=2,
    dim_feedforward=1024,
    hidden_dim=256,
    input_dropout=0.5,
    dropout=0.1,
    nheads=8,
    num_queries=10,
    n_input_proj=2,
    use_txt_pos=False,
    pre_norm=False,
    position_embedding="sine",
    span_loss_type="l1",
    ctx_mode="video_tef",
    max_q_l=32,
    max_v_l=75,
    clip_length=2,
    max_windows=5,
    set_cost_class=4,
    label_loss_coef=4,
    eos_coef=0.1,
    lw_saliency=1.0,
    saliency_margin=0.2,
    aux_loss=True,
    contrastive_align_loss=False,
)
_SOURCE_DEFAULTS = {
    "qd-detr": dict(set_cost_span=10, set_cost_giou=1, span_loss_coef=10, giou_loss_coef=1, a_feat_dir=None),
    "td-detr-official": dict(
        set_cost_span=1, set_cost_giou=10, span_loss_coef=1, giou_loss_coef=10, beta=0.7, alpha=0.7,
        sample_strategy="sim",
    ),
}
_PAIRING_BY_STRATEGY = {"sim": "similarity", "random": "random"}


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise TDDetrInputError(f"unknown checkpoint source {source!r}; expected one of {SOURCES}")
    return source


def resolve_official_options(options: Mapping, source: str) -> tuple[dict, list[str]]:
    """Options with the official parser defaults filled in, and the names that were filled in."""
    defaults = {**_COMMON_DEFAULTS, **_SOURCE_DEFAULTS[check_source(source)]}
    resolved = dict(options)
    defaulted = sorted(name for name in defaults if name not in resolved)
    for name in defaulted:
        resolved[name] = defaults[name]
    return resolved, defaulted


def check_supported(options: Mapping, source: str, where: str) -> None:
    """Refuse official settings our model cannot reproduce exactly, naming the option."""
    problems = []
    if options["pre_norm"]:
        problems.append("pre_norm=True (the official pre-norm T2V path hard-codes 75 clips and is not reproduced)")
    if options["span_loss_type"] != "l1":
        problems.append(f"span_loss_type={options['span_loss_type']!r} (only the 'l1' (centre, width) head exists)")
    if options["position_embedding"] != "sine":
        problems.append(f"position_embedding={options['position_embedding']!r} (only 'sine' is supported)")
    if options["use_txt_pos"]:
        problems.append(
            "use_txt_pos=True (the official text 'position' is LayerNorm(text + table) and the negative pass reuses "
            "the positive text's; our text_position adds the table only)"
        )
    if "video" not in str(options["ctx_mode"]):
        problems.append(f"ctx_mode={options['ctx_mode']!r} without video features")
    if int(options["hidden_dim"]) != 256:
        problems.append(
            f"hidden_dim={options['hidden_dim']} (the official anchor sine embedding is fixed at 128 + 128 features, "
            "so only 256 runs there)"
        )
    if problems:
        raise TDDetrInputError(f"{where}: unsupported {source} setting(s): " + "; ".join(problems))


def _max_video_length(value) -> int | None:
    value = None if value is None else int(value)
    return None if value is None or value <= 0 else value


def build_config(
    options: Mapping, source: str, video_feature_size: int, text_feature_size: int, t2v_layers: int
) -> TDDetrConfig:
    """The [`TDDetrConfig`] reproducing an official model. `video_feature_size` counts every channel the user feeds
    (video, then audio when the official model had audio) without the TEF, which our model appends itself."""
    is_td = source == "td-detr-official"
    settings = dict(
        video_feature_size=int(video_feature_size),
        text_feature_size=int(text_feature_size),
        use_tef="tef" in str(options["ctx_mode"]),
        clip_length=float(options["clip_length"]),
        max_video_length=_max_video_length(options["max_v_l"]),
        max_query_length=int(options["max_q_l"]),
        max_windows=int(options["max_windows"]),
        hidden_size=int(options["hidden_dim"]),
        num_attention_heads=int(options["nheads"]),
        ffn_dim=int(options["dim_feedforward"]),
        dropout=float(options["dropout"]),
        input_dropout=float(options["input_dropout"]),
        num_input_projections=int(options["n_input_proj"]),
        num_queries=int(options["num_queries"]),
        t2v_layers=int(t2v_layers),
        encoder_layers=int(options["enc_layers"]),
        decoder_layers=int(options["dec_layers"]),
        activation_function="prelu",  # hard-coded by both official build_transformer functions
        use_text_position=False,
        use_dynamics=is_td,
        matcher_class_cost=float(options["set_cost_class"]),
        matcher_span_cost=float(options["set_cost_span"]),
        matcher_giou_cost=float(options["set_cost_giou"]),
        class_loss_weight=float(options["label_loss_coef"]),
        span_loss_weight=float(options["span_loss_coef"]),
        giou_loss_weight=float(options["giou_loss_coef"]),
        eos_coefficient=float(options["eos_coef"]),
        saliency_loss_weight=float(options["lw_saliency"]),
        saliency_margin=float(options["saliency_margin"]),
        saliency_temperature=0.5,  # hard-coded in the official saliency loss (`temperature` is another loss's)
        use_auxiliary_loss=bool(options["aux_loss"]),
    )
    if is_td:
        # Every official behaviour (differences of position-added tokens, β-mixed residual, the official synthesizer,
        # T2V mask and [0, 150] s clamp), with the checkpoint's own β / α / pairing.
        settings.update(
            OFFICIAL_TD_DETR,
            dynamics_beta=float(options["beta"]),
            synthesis_pairing=_PAIRING_BY_STRATEGY.get(str(options["sample_strategy"]), "similarity"),
            synthesis_alpha=float(options["alpha"]),
        )
    else:
        # QD-DETR shares the T2V mask and the [0, 150] s clamp of its post-processor.
        settings.update(synthesis_pairing="none", postprocess_clamp=OFFICIAL_TD_DETR["postprocess_clamp"])
    if reproduces_official_t2v_mask():
        settings[OFFICIAL_T2V_MASK_FIELD] = True
    return TDDetrConfig(**settings)


# The official T2V attention mask is repeated head-major for a batch-major attention, so in a batch each sample's
# heads see other samples' (padded clip × padded token) blocks. Reproducing that needs a model option (proposed to
# the model owners under this name); the converter switches it on as soon as the config has it.
OFFICIAL_T2V_MASK_FIELD = "official_t2v_mask"


def reproduces_official_t2v_mask() -> bool:
    return OFFICIAL_T2V_MASK_FIELD in getattr(TDDetrConfig, "__dataclass_fields__", {})
