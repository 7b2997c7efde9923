"""TD-DETR models: outputs, the pre-trained base, the encoder-decoder backbone and the moment-retrieval head model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_td_detr import TDDetrConfig
from .dropout import DROPOUT_IMPLEMENTATIONS
from .attention import ConditionalAttention, MultiheadAttention, official_t2v_blocked_pairs
from .dynamics import TDDetrDynamicTokenizer
from .losses import TDDetrLoss
from .position_encoding import video_position_embedding
from .postprocessing import post_process_moment_retrieval
from .span_utils import inverse_sigmoid
from .strict_loading import from_pretrained_strictly
from .transformer import (
    MLP,
    InputProjection,
    TDDetrDecoder,
    TDDetrEncoderLayer,
    TDDetrT2VLayer,
)


@dataclass
class TDDetrModelOutput(ModelOutput):
    """Outputs of [`TDDetrModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, num_queries, hidden)`): normed output of the last
            decoder layer.
        intermediate_hidden_states (`torch.FloatTensor` of shape `(num_decoder_layers, batch, num_queries, hidden)`):
            normed output of every decoder layer (the last one included).
        reference_anchors (`torch.FloatTensor` of shape `(num_decoder_layers, batch, num_queries, 2)`):
            the (centre, width) anchors each decoder layer received, in [0, 1].
        video_memory (`torch.FloatTensor` of shape `(batch, num_clips, hidden)`): encoder output of the video clips.
        global_memory (`torch.FloatTensor` of shape `(batch, hidden)`): encoder output of the global token.
        negative_video_memory, negative_global_memory: the same for the negative pair (each video with the text of
            the row `negative_text_index` names; by default the next row's), when computed.
    """

    last_hidden_state: torch.FloatTensor | None = None
    intermediate_hidden_states: torch.FloatTensor | None = None
    reference_anchors: torch.FloatTensor | None = None
    video_memory: torch.FloatTensor | None = None
    global_memory: torch.FloatTensor | None = None
    negative_video_memory: torch.FloatTensor | None = None
    negative_global_memory: torch.FloatTensor | None = None


@dataclass
class TDDetrMomentRetrievalOutput(ModelOutput):
    """Outputs of [`TDDetrForMomentRetrieval`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, when `labels` are given): weighted sum of all losses.
        loss_dict (`dict[str, torch.Tensor]`, when `labels` are given): every loss term, unweighted (auxiliary decoder
            layers suffixed `_<layer>`); `loss` is their sum weighted by [`TDDetrLoss.weight_dict`].
        logits (`torch.FloatTensor` of shape `(batch, num_queries, 2)`): class logits, index 0 = foreground.
        pred_spans (`torch.FloatTensor` of shape `(batch, num_queries, 2)`): normalised (centre, width) spans.
        saliency_scores (`torch.FloatTensor` of shape `(batch, num_clips)`): per-clip saliency (padded clips hold
            meaningless values: use `video_mask`).
        negative_saliency_scores (`torch.FloatTensor` of shape `(batch, num_clips)`): saliency of the same videos
            under their negative texts (computed in training or when asked for).
        negative_pair_mask (`torch.FloatTensor` of shape `(batch,)`): 1 where a row has a negative pair, 0 where
            `negative_text_index` was -1 (the loss skips those rows' negative terms).
        video_mask (`torch.FloatTensor` of shape `(batch, num_clips)`): 1 for valid clips.
        auxiliary_outputs (`list[dict]`): `{"logits", "pred_spans"}` of the earlier decoder layers.
    """

    loss: torch.FloatTensor | None = None
    loss_dict: dict | None = None
    logits: torch.FloatTensor | None = None
    pred_spans: torch.FloatTensor | None = None
    saliency_scores: torch.FloatTensor | None = None
    negative_saliency_scores: torch.FloatTensor | None = None
    negative_pair_mask: torch.FloatTensor | None = None
    video_mask: torch.FloatTensor | None = None
    auxiliary_outputs: list | None = None


def negative_row_index(negative_text_index: torch.Tensor | None, batch: int, device, text_rows: int | None = None):
    """Text row each row is paired with in the negative pass: `negative_text_index` (-1 → the row itself, a
    placeholder the loss masks) or, when not given, the next row (the official roll by one). `text_rows`: how many
    text rows there are (default `batch`; more when extra rows only serve as negatives)."""
    if negative_text_index is None:
        return torch.roll(torch.arange(batch, device=device), -1)
    text_rows = batch if text_rows is None else text_rows
    index = torch.as_tensor(negative_text_index, device=device).long()
    if index.shape != (batch,) or int(index.max()) >= text_rows:
        raise ValueError(f"negative_text_index must hold {batch} indices of the {text_rows} text rows (-1 for none), "
                         f"got {tuple(index.shape)}")
    return torch.where(index >= 0, index, torch.arange(batch, device=device))


def temporal_endpoint_features(video_mask: torch.Tensor) -> torch.Tensor:
    """TEF `[i/Lv, (i+1)/Lv]` per clip from a [B, L] mask (1 valid), each sample with its own valid length Lv;
    zeros at padded clips."""
    mask = video_mask.to(torch.float32)
    length = mask.sum(dim=1, keepdim=True).clamp(min=1)
    index = torch.arange(mask.shape[1], device=mask.device, dtype=torch.float32).unsqueeze(0)
    return torch.stack((index / length, (index + 1) / length), dim=-1) * mask.unsqueeze(-1)


class TDDetrPreTrainedModel(PreTrainedModel):
    config: TDDetrConfig
    config_class = TDDetrConfig
    base_model_prefix = "model"
    main_input_name = "video_features"
    input_modalities = ("video", "text")
    _no_split_modules = ["TDDetrT2VLayer", "TDDetrEncoderLayer", "TDDetrDecoderLayer"]
    # `model.gradient_checkpointing_enable()`: each T2V / encoder / decoder layer keeps only its inputs for the
    # backward and recomputes its activations (same dropout masks: the RNG state is replayed)
    supports_gradient_checkpointing = True

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As transformers', but strict: missing, unexpected or wrongly shaped tensors and unreadable weight files
        raise `TDDetrInputError` (see `td_detr.strict_loading`)."""
        return from_pretrained_strictly(super().from_pretrained, pretrained_model_name_or_path, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        """By module type: PyTorch's defaults for leaf layers and N(0, 1) for the learned tokens and anchors; then the
        official `Transformer._reset_parameters`: every ≥2-D weight inside a T2V, encoder or decoder stack is
        Xavier-uniform. Attention output biases and the anchor refinement's last bias are zero. Children are
        initialised before their parents, so a stack's Xavier pass overrides its leaves' defaults."""
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(module.in_features)
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.PReLU):
            init.constant_(module.weight, 0.25)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight)
        elif isinstance(module, MultiheadAttention):  # torch.nn.MultiheadAttention's own reset
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
            init.zeros_(module.out_proj.bias)
        elif isinstance(module, ConditionalAttention):  # the official DAB attention's reset
            init.zeros_(module.out_proj.bias)
        elif isinstance(module, (TDDetrT2VLayer, TDDetrEncoderLayer, TDDetrDecoder)):
            for parameter in module.parameters():
                if parameter.dim() > 1:
                    init.xavier_uniform_(parameter)
            if isinstance(module, TDDetrDecoder):  # official: the refinement starts from the anchors (zero bias)
                init.zeros_(module.bbox_embed.layers[-1].bias)
        elif isinstance(module, TDDetrDynamicTokenizer):
            init.normal_(module.start_token)
        elif isinstance(module, TDDetrModel):
            init.normal_(module.global_token)
            init.normal_(module.global_position)

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False) -> None:
        # transformers treats our classes as custom code and then marks parameter-less containers (a T2V layer, the
        # decoder) initialised without calling `_init_weights`. Every init above goes through
        # `transformers.initialization`, which skips loaded parameters, so that shortcut is not needed.
        super()._initialize_weights(module, is_custom_code=False)

    def post_init(self):
        super().post_init()
        self.set_dropout_implementation(self.config.dropout_implementation)

    def set_dropout_implementation(self, implementation: str) -> None:
        """Draw dropout masks with `"torch"` (`nn.Dropout`) or `"fast_cpu"` ([`td_detr.dropout.FastDropout`]): swaps
        every dropout module, the attention-weight dropouts included, and records the choice in the config."""
        if implementation not in DROPOUT_IMPLEMENTATIONS:
            raise ValueError(f"dropout_implementation={implementation!r}; expected one of {tuple(DROPOUT_IMPLEMENTATIONS)}")
        dropout_class = DROPOUT_IMPLEMENTATIONS[implementation]
        swaps = [(parent, name, child) for parent in self.modules() for name, child in parent.named_children()
                 if isinstance(child, nn.Dropout) and type(child) is not dropout_class]
        for parent, name, child in swaps:
            setattr(parent, name, dropout_class(child.p).train(child.training))
        self.config.dropout_implementation = implementation


class TDDetrModel(TDDetrPreTrainedModel):
    """The TD-DETR encoder-decoder without prediction heads.

    Sequence: input projections of video (+TEF) and text → T2V layers (video attends to text, with the dynamics
    enhancement) → text dropped → self-attention encoder over `[global token; video]` → DAB decoder over the video
    memory (global token excluded). The negative pair (text rolled by one within the batch) goes through the same
    T2V + encoder in the same batched call; its decoder output would be discarded, so it is not computed.
    """

    # The heads of a TDDetrForMomentRetrieval checkpoint, which the base model leaves out on purpose.
    _keys_to_ignore_on_load_unexpected = [r"^(class_head|span_head|saliency_clip_projection|saliency_global_projection)\."]

    def __init__(self, config: TDDetrConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.video_projection = InputProjection(
            config.video_input_size, hidden, config.num_input_projections, config.input_dropout
        )
        self.text_projection = InputProjection(
            config.text_feature_size, hidden, config.num_input_projections, config.input_dropout
        )
        self.text_position = (
            nn.Embedding(config.max_query_length, hidden) if config.use_text_position else None
        )
        self.global_token = nn.Parameter(torch.empty(hidden))
        self.global_position = nn.Parameter(torch.empty(hidden))
        self.dynamic_tokenizer = TDDetrDynamicTokenizer(hidden) if config.use_dynamics else None
        self.t2v_layers = nn.ModuleList(TDDetrT2VLayer(config) for _ in range(config.t2v_layers))
        self.encoder_layers = nn.ModuleList(TDDetrEncoderLayer(config) for _ in range(config.encoder_layers))
        self.decoder = TDDetrDecoder(config)
        self.anchors = nn.Embedding(config.num_queries, 2)
        self.post_init()

    def _check_inputs(self, video_features, text_features, negatives_given: bool):
        rows, text_rows = video_features.shape[0], text_features.shape[0]
        if text_rows != rows and not (negatives_given and text_rows > rows):
            raise ValueError(f"{rows} video rows but {text_rows} text rows; only with negative_text_index may text rows "
                             "follow the batch's own (as negative texts)")
        expected = self.config.video_feature_size
        if video_features.shape[-1] != expected:
            raise ValueError(
                f"video_features have {video_features.shape[-1]} channels but the model expects "
                f"video_feature_size={expected} (TEF is appended by the model, do not include it)"
            )
        if text_features.shape[-1] != self.config.text_feature_size:
            raise ValueError(
                f"text_features have {text_features.shape[-1]} channels but the model expects "
                f"text_feature_size={self.config.text_feature_size}"
            )

    def official_blocked_pairs(self, video_mask, text_mask):
        """The official code's (leaky) T2V masks for one forward batch: (video→text, dynamics→text); the dynamics
        mask counts clip 0 as valid, as the official code does."""
        heads = self.config.num_attention_heads
        video_padding, text_padding = ~video_mask.bool(), ~text_mask.bool()
        dynamics_padding = video_padding.clone()
        dynamics_padding[:, 0] = False
        return (
            official_t2v_blocked_pairs(video_padding, text_padding, heads),
            official_t2v_blocked_pairs(dynamics_padding, text_padding, heads),
        )

    def encode(self, video, video_mask, video_pos, text, text_mask, blocked=(None, None), text_rows=None):
        """T2V layers then the self-attention encoder. Returns (video memory [B, L, d], global memory [B, d]).
        `text_rows`: the text row each video row attends to (`text_mask` is per video row); default row i."""
        text_padding = ~text_mask.bool()
        if self.text_position is not None:
            text_pos = self.text_position.weight[: text.shape[1]].to(text.dtype).unsqueeze(0).expand_as(text)
        else:
            text_pos = torch.zeros_like(text)
        for layer in self.t2v_layers:
            video = layer(video, video_pos, text, text_pos, text_padding, self.dynamic_tokenizer, blocked, text_rows)
        batch = video.shape[0]
        # `.to(video.dtype)`: under autocast the stream stays in the compute dtype (cat would promote it to fp32)
        tokens = torch.cat((self.global_token.to(video.dtype).expand(batch, 1, -1), video), dim=1)
        positions = torch.cat((self.global_position.to(video_pos.dtype).expand(batch, 1, -1), video_pos), dim=1)
        padding = torch.cat((video_mask.new_zeros(batch, 1, dtype=torch.bool), ~video_mask.bool()), dim=1)
        for layer in self.encoder_layers:
            tokens = layer(tokens, positions, padding)
        return tokens[:, 1:], tokens[:, 0]

    @can_return_tuple
    def forward(
        self,
        video_features: torch.Tensor,
        video_mask: torch.Tensor,
        text_features: torch.Tensor,
        text_mask: torch.Tensor,
        compute_negative: bool = False,
        negative_text_index: torch.Tensor | None = None,
    ) -> TDDetrModelOutput | tuple:
        """
        Args:
            video_features: `[B, L, video_feature_size]` clip features (no TEF), zero-padded.
            video_mask: `[B, L]`, 1 for valid clips.
            text_features: `[B, T, text_feature_size]` token features, zero-padded; with `negative_text_index` and
                `compute_negative`, `[B + E, T, ...]`: rows past B only serve as negative texts (row chunks of a batch
                bring their negatives' texts along, see `td_detr.row_chunks`).
            text_mask: `[B, T]` (`[B + E, T]`), 1 for valid tokens.
            compute_negative: also encode each video with a negative text (the negative pair).
            negative_text_index: `[B]` int, the row whose text is each row's negative (-1: none, any text is run and
                the loss ignores it). Default: the next row's text, as the official code does; the training collator
                always gives it (`td_detr.data.negatives`: never a query on the row's own videos).
            return_dict (keyword): a [`TDDetrModelOutput`] (default: `config.return_dict`) or, if False, its tuple.
        """
        self._check_inputs(video_features, text_features, compute_negative and negative_text_index is not None)
        batch = video_features.shape[0]
        video_mask = video_mask.to(video_features.dtype)
        if self.config.use_tef:
            video_features = torch.cat((video_features, temporal_endpoint_features(video_mask)), dim=-1)
        video = self.video_projection(video_features)
        text = self.text_projection(text_features)
        video_pos = video_position_embedding(video_mask, self.config.hidden_size).to(video.dtype)

        if compute_negative:
            # Positive and negative pairs share the video side; one batched pass of 2B is cheaper than two passes. The
            # negative texts are rows of the same B texts, so their key / value projections are computed once (on B
            # rows) and indexed by `text_rows`.
            index = negative_row_index(negative_text_index, batch, text.device, text_rows=text.shape[0])
            text_rows = torch.cat((torch.arange(batch, device=text.device), index))
            positive_mask, negative_mask = text_mask[:batch], text_mask[index]
            blocked = (None, None)
            if self.config.official_t2v_mask:  # the official code runs the negative pass as a batch of its own
                positive, negative = (self.official_blocked_pairs(video_mask, m) for m in (positive_mask, negative_mask))
                blocked = tuple(torch.cat(pair) for pair in zip(positive, negative))
            memory, global_memory = self.encode(
                video.repeat(2, 1, 1),
                video_mask.repeat(2, 1),
                video_pos.repeat(2, 1, 1),
                text,
                torch.cat((positive_mask, negative_mask)),
                blocked,
                text_rows,
            )
            memory, negative_memory = memory.chunk(2)
            global_memory, negative_global = global_memory.chunk(2)
        else:
            blocked = self.official_blocked_pairs(video_mask, text_mask) if self.config.official_t2v_mask else (None, None)
            memory, global_memory = self.encode(video, video_mask, video_pos, text, text_mask, blocked)
            negative_memory = negative_global = None

        hidden_states, references = self.decoder(memory, video_pos, ~video_mask.bool(), self.anchors.weight)
        outputs = TDDetrModelOutput(
            last_hidden_state=hidden_states[-1],
            intermediate_hidden_states=hidden_states,
            reference_anchors=references,
            video_memory=memory,
            global_memory=global_memory,
            negative_video_memory=negative_memory,
            negative_global_memory=negative_global,
        )
        return outputs


class TDDetrForMomentRetrieval(TDDetrPreTrainedModel):
    """TD-DETR with its prediction heads: foreground class (index 0) and (centre, width) span per moment query from
    every decoder layer, and per-clip saliency as the scaled dot product of projected clip and global-token memories.

    `forward(..., labels=...)` also returns the loss (see [`td_detr.losses.TDDetrLoss`]);
    [`post_process_moment_retrieval`] turns outputs into ranked windows in seconds.
    """

    def __init__(self, config: TDDetrConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.model = TDDetrModel(config)
        self.class_head = nn.Linear(hidden, 2)
        self.span_head = MLP(hidden, hidden, 2, 3)
        self.saliency_clip_projection = nn.Linear(hidden, hidden)
        self.saliency_global_projection = nn.Linear(hidden, hidden)
        self.criterion = TDDetrLoss(config)
        self.post_init()

    def saliency(self, video_memory: torch.Tensor, global_memory: torch.Tensor) -> torch.Tensor:
        """Scaled dot product of projected clip and global memories, reduced in fp32 (the projections may run in
        bf16 / fp16 under autocast; the saliency losses and rankings read small differences of these scores)."""
        clips = self.saliency_clip_projection(video_memory).float()
        global_token = self.saliency_global_projection(global_memory).float().unsqueeze(1)
        return (clips * global_token).sum(-1) / math.sqrt(self.config.hidden_size)

    @can_return_tuple
    def forward(
        self,
        video_features: torch.Tensor,
        video_mask: torch.Tensor,
        text_features: torch.Tensor,
        text_mask: torch.Tensor,
        labels: list[dict] | None = None,
        output_negative_saliency: bool | None = None,
        negative_text_index: torch.Tensor | None = None,
    ) -> TDDetrMomentRetrievalOutput | tuple:
        """
        Args:
            video_features, video_mask, text_features, text_mask: as [`TDDetrModel.forward`].
            labels: per sample a dict with `spans` ([n, 2] normalised centre, width), `saliency_pos_labels` ([2]),
                `saliency_neg_labels` ([2]) and `saliency_all_labels` ([Lv]); gives `loss` and `loss_dict`.
            output_negative_saliency: compute the negative-pair saliency; defaults to True when training or when
                labels are given (the loss needs it) and False otherwise (inference skips that pass).
            negative_text_index: each row's negative text, as [`TDDetrModel.forward`].
            return_dict (keyword): a [`TDDetrMomentRetrievalOutput`] (default: `config.return_dict`) or, if False, its
                tuple (`None` fields left out, as transformers does).
        """
        if output_negative_saliency is None:
            output_negative_saliency = self.training or labels is not None
        outputs = self.model(
            video_features, video_mask, text_features, text_mask, compute_negative=output_negative_saliency,
            negative_text_index=negative_text_index,
            return_dict=True,
        )
        hidden_states = outputs.intermediate_hidden_states
        # Heads' outputs in fp32 whatever autocast computed them in (a no-op without autocast): the matcher, the
        # losses and the post-processing compare and rank them.
        logits = self.class_head(hidden_states).float()
        spans = (self.span_head(hidden_states).float() + inverse_sigmoid(outputs.reference_anchors.float())).sigmoid()
        saliency = self.saliency(outputs.video_memory, outputs.global_memory)
        negative_saliency = negative_pair_mask = None
        if outputs.negative_video_memory is not None:
            negative_saliency = self.saliency(outputs.negative_video_memory, outputs.negative_global_memory)
            negative_pair_mask = saliency.new_ones(saliency.shape[0])
            if negative_text_index is not None:
                negative_pair_mask = (torch.as_tensor(negative_text_index, device=saliency.device) >= 0).to(saliency.dtype)
        auxiliary = [{"logits": a, "pred_spans": b} for a, b in zip(logits[:-1], spans[:-1])]
        fields = dict(
            logits=logits[-1],
            pred_spans=spans[-1],
            saliency_scores=saliency,
            negative_saliency_scores=negative_saliency,
            negative_pair_mask=negative_pair_mask,
            video_mask=video_mask.to(saliency.dtype),
            auxiliary_outputs=auxiliary if self.config.use_auxiliary_loss else None,
        )
        loss = loss_dict = None
        if labels is not None:
            with torch.autocast(logits.device.type, enabled=False):  # losses in fp32 (their inputs are fp32 above)
                loss, loss_dict = self.criterion(TDDetrMomentRetrievalOutput(**fields), labels)
        # built once with the loss: a ModelOutput field set later is an attribute only, not a key / tuple entry
        return TDDetrMomentRetrievalOutput(loss=loss, loss_dict=loss_dict, **fields)

    def post_process(self, outputs: TDDetrMomentRetrievalOutput, durations, round_to_clip: bool | None = None):
        """Ranked windows `[start_s, end_s, score]` and valid-clip saliency per query; see
        [`post_process_moment_retrieval`]."""
        return post_process_moment_retrieval(
            outputs,
            durations,
            clip_length=self.config.clip_length,
            round_to_clip=self.config.round_to_clip if round_to_clip is None else round_to_clip,
            clamp=self.config.postprocess_clamp,
            min_window_clips=self.config.min_window_clips,
        )


__all__ = ["TDDetrPreTrainedModel", "TDDetrModel", "TDDetrForMomentRetrieval", "TDDetrModelOutput", "TDDetrMomentRetrievalOutput"]


def _register_auto_classes() -> None:
    from transformers import AutoConfig, AutoModel

    AutoConfig.register(TDDetrConfig.model_type, TDDetrConfig, exist_ok=True)
    AutoModel.register(TDDetrConfig, TDDetrModel, exist_ok=True)


_register_auto_classes()
