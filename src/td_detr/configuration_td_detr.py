"""TD-DETR configuration.

Every hyper-parameter is a documented keyword. Defaults are the official TD-DETR QVHighlights run with SlowFast+CLIP
features (`td_detr/scripts/train.sh`: 4 T2V / encoder / decoder layers, L1 / gIoU weights 1 / 10).
:meth:`TDDetrConfig.qd_detr_baseline` gives the QD-DETR baseline (2/2/2 layers, weights 10 / 1, no dynamics, no synthesis).

Defaults: where the paper describes a behaviour, the default follows the paper. Where the paper is silent or
ambiguous, the default follows the official code, unless that code's behaviour is a bug (`official_t2v_mask`) or a
constant of one data set (`postprocess_clamp`). Every official behaviour that is not the default is an option, each
keyword says which is which, and :meth:`TDDetrConfig.official_td_detr` (`td-detr train --official`) selects all of them
at once (:data:`OFFICIAL_TD_DETR`; the table in docs/RESULTS.md lists every difference).
"""


from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .data.labels import PSEUDO_LABEL_CLIP_MODES
from .errors import TDDetrInputError
from .registry import data_set

# The allowed values of the choice fields (the synthesizer and the collator take them from here).
PAIRINGS = ("similarity", "random", "none")
SAMPLINGS = ("bernoulli", "fixed_count")
FUSIONS = ("residual", "scaled")
SIMILARITIES = ("mean", "top50")
PART_ORDERS = ("pair", "moment_first", "random")
POSTPROCESS_CLAMPS = ("duration", "official")

# Every model-side behaviour the official TD-DETR code fixes where the paper differs, is silent or is ambiguous
# (training side: `td_detr.training.OFFICIAL_TRAINING`); the hyper-parameters both agree on (α, β, layers, loss
# weights) are not in it. `TDDetrConfig.official_td_detr()` applies exactly these; docs/RESULTS.md tabulates them.
OFFICIAL_TD_DETR = {
    # differ from the defaults
    "dynamics_with_position": True,
    "synthesis_sampling": "fixed_count",
    "synthesis_similarity": "top50",
    "synthesis_cap_length": False,
    "synthesis_keep_originals": True,
    "official_t2v_mask": True,
    "postprocess_clamp": "official",
    # already the defaults (the paper is silent or ambiguous, so the official code decides)
    "dynamics_fusion": "residual",
    "synthesis_part_order": "pair",
    "synthesis_anchor_fraction": 0.5,
    "synthesis_length_jitter": 0.2,
    "pseudo_label_clip": "clip_length",
}
_DROPOUT_IMPLEMENTATIONS = ("torch", "fast_cpu")


@strict(accept_kwargs=True)  # every field is type-checked (a config.json with "hidden_size": "64" is refused)
class TDDetrConfig(PreTrainedConfig):
    r"""
    Configuration of a [`TDDetrModel`] / [`TDDetrForMomentRetrieval`].

    Features and lengths:
        video_feature_size (`int`, defaults to 2816): width of the (concatenated, L2-normalised) clip features, e.g.
            SlowFast 2304 + CLIP 512. The TEF channels are *not* included: the model appends them itself.
        text_feature_size (`int`, defaults to 512): width of the per-token text features (CLIP text tower).
        use_tef (`bool`, defaults to `True`): append the temporal endpoint feature `[i/Lv, (i+1)/Lv]` of every clip
            (computed from the video mask, so each sample uses its own length) before the input projection.
        clip_length (`float`, defaults to 2.0): seconds per clip (QVHighlights 2, Charades-STA SlowFast+CLIP 1).
        max_video_length (`int` or `None`, defaults to 75): clips kept per video by the data side (`None`: no cap).
        max_query_length (`int`, defaults to 32): text tokens kept per query.
        max_windows (`int`, defaults to 5): ground-truth windows kept per query in training (chosen at random).

    Architecture (QD-DETR, restated in reference-qd-detr.md §2):
        hidden_size (`int`, defaults to 256): model width.
        num_attention_heads (`int`, defaults to 8).
        ffn_dim (`int`, defaults to 1024): feed-forward width in every transformer layer.
        dropout (`float`, defaults to 0.1): dropout inside the transformer layers (attention and FFN).
        input_dropout (`float`, defaults to 0.5): dropout in the input projections.
        num_input_projections (`int`, defaults to 2): LayerNorm→Dropout→Linear(→ReLU) blocks per input stream (1–3).
        num_queries (`int`, defaults to 10): moment queries (anchors) of the decoder.
        t2v_layers (`int`, defaults to 4): text-to-video cross-attention layers (official TD-DETR QVHighlights: 4).
        encoder_layers (`int`, defaults to 4): self-attention encoder layers over `[global token; video]`.
        decoder_layers (`int`, defaults to 4): DAB-style decoder layers with anchor refinement.
        activation_function (`str`, defaults to `"prelu"`): FFN activation, `"prelu"` (one learnable slope per layer),
            `"relu"` or `"gelu"`.
        use_text_position (`bool`, defaults to `False`): add a learned position table to the text tokens (QD-DETR
            keeps them at zero).
        official_t2v_mask (`bool`, defaults to `False`): reproduce the official T2V attention mask bug (the
            per-sample padding mask is repeated head-major but read batch-major, so samples of a batch mask each
            other's valid pairs; see `attention.official_t2v_blocked_pairs`). Off: each sample attends to all its valid
            tokens and outputs do not depend on the batch. Converted official checkpoints turn it on to match official
            numbers exactly.
        dropout_implementation (`str`, defaults to `"torch"`): how dropout masks are drawn, the same distribution
            either way: `"torch"` (`nn.Dropout`, and SDPA's own attention dropout) or `"fast_cpu"`
            (`td_detr.dropout.FastDropout`: masks from 15-bit lanes of 64-bit random words, a keep probability exact
            to 2^-15; about 1.25x faster CPU training steps; off the CPU it defers to torch). An implementation
            choice like transformers' `attn_implementation`; `model.set_dropout_implementation()` switches it.

    Dynamics enhancement (paper §3.2; `use_dynamics=False` is the QD-DETR baseline):
        use_dynamics (`bool`, defaults to `True`): run the dynamic tokenizer and the text-dynamics cross-attention in
            every T2V layer.
        dynamics_beta (`float`, defaults to 0.7): β of Eq. 6, the weight of the video tokens; the text-guided dynamics
            get 1−β.
        dynamics_fusion (`str`, defaults to `"residual"`): how Eq. 6 enters the T2V layer. Eq. 6 does not say which
            video term β scales, so the default is the official code's reading (`td_detr/transformer.py`,
            `T2V_TransformerEncoderLayer`): `"residual"`: `x = β·v + (1−β)·T' + Dropout(CrossAttn(v))`, i.e. β scales the
            layer's input tokens v (the residual stream), 1−β the text-attended dynamics T', and the ordinary
            video→text attention is added with weight 1 as in QD-DETR. `"scaled"`: `x = β·(v + Dropout(CrossAttn(v)))
            + (1−β)·T'`, the reading where Ṽ in Eq. 6 is the already text-attended video.
        dynamics_with_position (`bool`, defaults to `False`): paper Eq. 3 takes differences of the video tokens;
            the official code takes them on the tokens *plus* their sine position embedding (`True`).

    Video synthesizer (paper §3.1; used by the training collator, stored here so a checkpoint records how it was
    trained):
        synthesis_pairing (`str`, defaults to `"similarity"`): partner of each video: `"similarity"` (argmax of Eq. 1
            within the batch, self excluded), `"random"` (Table S4) or `"none"` (no synthesis).
        synthesis_alpha (`float`, defaults to 0.7): α, share of the video's own context kept; 1−α of the partner's clips
            are brought in.
        synthesis_length_jitter (`float`, defaults to 0.2): each sampled part is resized by r ∈ (1−j, 1+j] (official).
        synthesis_sampling (`str`, defaults to `"bernoulli"`): paper: every context token is kept with probability α
            (partner tokens with 1−α); `"fixed_count"` (official): a random subset of ⌊α·n⌋ tokens, only when > 2.
        synthesis_keep_originals (`bool`, defaults to `False`): paper (§3.1–3.2): every row of a batch of B is an anchor
            and the step trains on the 2·B synthesized videos of the spurious pairs. `True` (official): a random
            `synthesis_anchor_fraction` of the rows are anchors and the other rows stay as they are (≈1.5·B rows,
            one third original, as an official step of SimilarityConcatDataset entries).
        synthesis_anchor_fraction (`float`, defaults to 0.5): share of rows made anchors when originals are kept
            (official: half the entries of an epoch are synthetic). In (0, 1].
        synthesis_similarity (`str`, defaults to `"mean"`): pair score: `"mean"` (paper Eq. 1, mean clip-pair cosine) or
            `"top50"` (official: mean of the 50 largest clip-pair scores).
        synthesis_cap_length (`bool`, defaults to `True`): paper (Fig. 2, "the synthesized videos maintain their
            original length"): cut synthesized videos to `max_video_length` clips (context only, never the moment).
            `False` (official): no cap (72% of synthetic QVHighlights videos exceed 75 clips).
        synthesis_part_order (`str`, defaults to `"pair"`): order of the two parts of a synthesized video (the paper
            does not say): `"pair"` (official: [V_i part ; V_k part] in both outputs), `"moment_first"` (the moment's
            own video first) or `"random"` (either, per output).
        pseudo_label_clip (`str`, defaults to `"clip_length"`): seconds → clips for the saliency pseudo-labels of
            rows without saliency scores (Charades): `"clip_length"` (official TD-DETR, consistent with the span labels)
            or `"duration"` (`duration / ctx_l`, CG-DETR).

    Matching and losses (reference-qd-detr.md §3; official TD-DETR QVHighlights swaps the span / gIoU weights):
        matcher_class_cost (`float`, defaults to 4.0), matcher_span_cost (`float`, defaults to 1.0),
        matcher_giou_cost (`float`, defaults to 10.0): Hungarian matching cost weights.
        class_loss_weight (`float`, defaults to 4.0), span_loss_weight (`float`, defaults to 1.0),
        giou_loss_weight (`float`, defaults to 10.0): moment loss weights.
        eos_coefficient (`float`, defaults to 0.1): cross-entropy weight of the background class.
        saliency_loss_weight (`float`, defaults to 1.0): weight of the summed saliency losses (Charades: 4).
        saliency_margin (`float`, defaults to 0.2): margin of the ranking loss.
        saliency_temperature (`float`, defaults to 0.5): τ of the rank-aware contrastive loss.
        use_auxiliary_loss (`bool`, defaults to `True`): apply the moment losses to every decoder layer.

    Post-processing:
        round_to_clip (`bool`, defaults to `True`): round predicted window ends to multiples of `clip_length`
            (half to even), as the reference post-processing does.
        postprocess_clamp (`str`, defaults to `"duration"`): clamp predicted windows to `[0, duration]` of each video,
            or `"official"`: to `[0, 150]` s as the official inference does for QVHighlights and Charades-STA (a
            QVHighlights constant: windows may end past a shorter video's end). The paper's numbers were produced
            with `"official"`.
        min_window_clips (`int`, defaults to 1): every predicted window spans at least this many clips (a window
            that collapsed to a point, e.g. `[114.0, 114.0]` after clamping to the duration, is widened inside the
            video). `0` keeps such zero-length windows, as the reference post-processing does (its min-length clip
            is configured but not applied).
    """

    model_type = "td_detr"

    video_feature_size: int = 2816
    text_feature_size: int = 512
    use_tef: bool = True
    clip_length: float | int = 2.0
    max_video_length: int | None = 75
    max_query_length: int = 32
    max_windows: int = 5

    hidden_size: int = 256
    num_attention_heads: int = 8
    ffn_dim: int = 1024
    dropout: float | int = 0.1
    input_dropout: float | int = 0.5
    num_input_projections: int = 2
    num_queries: int = 10
    t2v_layers: int = 4
    encoder_layers: int = 4
    decoder_layers: int = 4
    activation_function: str = "prelu"
    use_text_position: bool = False
    official_t2v_mask: bool = False
    dropout_implementation: str = "torch"

    use_dynamics: bool = True
    dynamics_beta: float | int = 0.7
    dynamics_fusion: str = "residual"
    dynamics_with_position: bool = False

    synthesis_pairing: str = "similarity"
    synthesis_alpha: float | int = 0.7
    synthesis_length_jitter: float | int = 0.2
    synthesis_sampling: str = "bernoulli"
    synthesis_keep_originals: bool = False
    synthesis_anchor_fraction: float | int = 0.5
    synthesis_similarity: str = "mean"
    synthesis_cap_length: bool = True
    synthesis_part_order: str = "pair"
    pseudo_label_clip: str = "clip_length"

    matcher_class_cost: float | int = 4.0
    matcher_span_cost: float | int = 1.0
    matcher_giou_cost: float | int = 10.0
    class_loss_weight: float | int = 4.0
    span_loss_weight: float | int = 1.0
    giou_loss_weight: float | int = 10.0
    eos_coefficient: float | int = 0.1
    saliency_loss_weight: float | int = 1.0
    saliency_margin: float | int = 0.2
    saliency_temperature: float | int = 0.5
    use_auxiliary_loss: bool = True

    round_to_clip: bool = True
    postprocess_clamp: str = "duration"
    min_window_clips: int = 1

    def __post_init__(self, **kwargs):
        # The one model_type check: from_pretrained, from_dict and from_json_file all pass a saved "model_type" here.
        if kwargs.get("model_type", self.model_type) != self.model_type:
            raise TDDetrInputError(f"model_type is {kwargs['model_type']!r}: not td-detr ({self.model_type!r})")
        super().__post_init__(**kwargs)
        self.validate_choices()

    def validate_choices(self) -> None:
        """Reject impossible settings early, naming the field ([`TDDetrInputError`], a `ValueError`). The only
        validation of these settings: the collator and the synthesizer are built from a config."""
        checks = {
            "synthesis_pairing": (self.synthesis_pairing, PAIRINGS),
            "synthesis_sampling": (self.synthesis_sampling, SAMPLINGS),
            "dynamics_fusion": (self.dynamics_fusion, FUSIONS),
            "synthesis_similarity": (self.synthesis_similarity, SIMILARITIES),
            "synthesis_part_order": (self.synthesis_part_order, PART_ORDERS),
            "pseudo_label_clip": (self.pseudo_label_clip, PSEUDO_LABEL_CLIP_MODES),
            "postprocess_clamp": (self.postprocess_clamp, POSTPROCESS_CLAMPS),
            "activation_function": (self.activation_function, ("prelu", "relu", "gelu")),
            "dropout_implementation": (self.dropout_implementation, _DROPOUT_IMPLEMENTATIONS),
        }
        for field, (value, allowed) in checks.items():
            if value not in allowed:
                raise TDDetrInputError(f"TDDetrConfig.{field}={value!r}; expected one of {allowed}")
        if self.hidden_size % self.num_attention_heads:
            raise TDDetrInputError(
                f"TDDetrConfig.hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if self.hidden_size % 2:
            raise TDDetrInputError(f"TDDetrConfig.hidden_size={self.hidden_size} must be even (sine embeddings)")
        for field in ("video_feature_size", "text_feature_size", "hidden_size", "num_attention_heads", "ffn_dim",
                      "num_queries", "decoder_layers", "max_query_length", "max_windows"):
            if getattr(self, field) < 1:
                raise TDDetrInputError(f"TDDetrConfig.{field}={getattr(self, field)} must be at least 1")
        for field in ("t2v_layers", "encoder_layers"):
            if getattr(self, field) < 0:
                raise TDDetrInputError(f"TDDetrConfig.{field}={getattr(self, field)} must not be negative")
        if self.max_video_length is not None and self.max_video_length < 1:
            raise TDDetrInputError(f"TDDetrConfig.max_video_length={self.max_video_length} must be at least 1 (or None)")
        if not self.clip_length > 0:
            raise TDDetrInputError(f"TDDetrConfig.clip_length={self.clip_length} must be positive")
        for field in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(self, field) < 1.0:
                raise TDDetrInputError(f"TDDetrConfig.{field}={getattr(self, field)} must lie in [0, 1)")
        if self.min_window_clips < 0:
            raise TDDetrInputError(f"TDDetrConfig.min_window_clips={self.min_window_clips} must be >= 0")
        if not 1 <= self.num_input_projections <= 3:
            raise TDDetrInputError(f"TDDetrConfig.num_input_projections={self.num_input_projections}; expected 1, 2 or 3")
        for field in ("dynamics_beta", "synthesis_alpha", "synthesis_length_jitter"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise TDDetrInputError(f"TDDetrConfig.{field}={getattr(self, field)} must lie in [0, 1]")
        if not 0.0 < self.synthesis_anchor_fraction <= 1.0:
            raise TDDetrInputError(f"TDDetrConfig.synthesis_anchor_fraction={self.synthesis_anchor_fraction} must lie in (0, 1]")

    @property
    def video_input_size(self) -> int:
        """Width the input projection sees: the clip features plus the 2 TEF channels when `use_tef`."""
        return self.video_feature_size + (2 if self.use_tef else 0)

    @classmethod
    def qd_detr_baseline(cls, **kwargs) -> "TDDetrConfig":
        """The QD-DETR baseline (CVPR 2023) as released for QVHighlights: 2 T2V / encoder / decoder layers, matcher
        and loss weights span 10 / gIoU 1, no dynamics enhancement and no video synthesis. Keywords override."""
        baseline = dict(
            t2v_layers=2,
            encoder_layers=2,
            decoder_layers=2,
            use_dynamics=False,
            synthesis_pairing="none",
            matcher_span_cost=10.0,
            matcher_giou_cost=1.0,
            span_loss_weight=10.0,
            giou_loss_weight=1.0,
        )
        baseline.update(kwargs)
        return cls(**baseline)

    @classmethod
    def official_td_detr(cls, base: "TDDetrConfig | None" = None, **kwargs) -> "TDDetrConfig":
        """`base` (default: `TDDetrConfig()`, the QVHighlights run) with every model-side behaviour of the official
        TD-DETR code (:data:`OFFICIAL_TD_DETR`): fixed-count sampling, top-50 similarity, no length cap, dynamics on
        position-added tokens, originals kept (≈1.5·B rows), the official T2V mask and the [0, 150] s clamp.
        Keywords override. The training side (epoch length, weight decay) is `td_detr.training.OFFICIAL_TRAINING`;
        `td-detr train --official` applies both."""
        settings = base.to_dict() if base is not None else {}
        settings.update(OFFICIAL_TD_DETR)
        settings.update(kwargs)
        return cls(**{k: v for k, v in settings.items() if k not in _NOT_INIT})

    @classmethod
    def for_data_set(cls, name: str, **kwargs) -> "TDDetrConfig":
        """The model config of a data set in `td_detr.registry.DATA_SETS` (its keywords on top of the defaults;
        `"qvhighlights"` and `"custom"`: the defaults). Keywords override."""
        return cls(**{**data_set(name).model, **kwargs})

    @classmethod
    def charades_sta(cls, **kwargs) -> "TDDetrConfig":
        """Official TD-DETR Charades-STA settings (`scripts/charadesSTA/train_charades.sh`; see
        `td_detr.registry.DATA_SETS["charades_sta"]`): 1-s clips, no video cap, 3 layers each, span / gIoU 10 / 1,
        saliency weight 4. Keywords override."""
        return cls.for_data_set("charades_sta", **kwargs)


# to_dict() entries that are not constructor keywords of a config
_NOT_INIT = ("model_type", "transformers_version", "architectures")

__all__ = ["OFFICIAL_TD_DETR", "TDDetrConfig"]
