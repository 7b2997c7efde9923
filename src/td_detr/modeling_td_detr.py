"""TD-DETR models: outputs, the pre-trained base, the encoder-decoder backbone and the moment-retrieval head model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_td_detr import TDDetrConfig
from .attention import MultiheadAttention, official_t2v_blocked_pairs
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
        decoder_hidden_states (`torch.FloatTensor` of shape `(num_decoder_layers, batch, num_queries, hidden)`):
            normed output of every decoder layer.
        reference_anchors (`torch.FloatTensor` of shape `(num_decoder_layers, batch, num_queries, 2)`):
            the (centre, width) anchors each decoder layer received, in [0, 1].
        video_memory (`torch.FloatTensor` of shape `(batch, num_clips, hidden)`): encoder output of the video clips.
        global_memory (`torch.FloatTensor` of shape `(batch, hidden)`): encoder output of the global token.
        negative_video_memory, negative_global_memory: the same for the negative pair (each video with the text of
            the row `negative_text_index` names; by default the next row's), when computed.
    """

    decoder_hidden_states: torch.FloatTensor | None = None
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
        loss_dict (`dict[str, torch.Tensor]`, when `labels` are given): every loss term, already weighted.
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


def negative_row_index(negative_text_index: torch.Tensor | None, batch: int, device) -> torch.Tensor:
    """Row whose text each row is paired with in the negative pass: `negative_text_index` (-1 → the row itself, a
    placeholder the loss masks) or, when not given, the next row (the official roll by one)."""
    if negative_text_index is None:
        return torch.roll(torch.arange(batch, device=device), -1)
    index = torch.as_tensor(negative_text_index, device=device).long()
    if index.shape != (batch,) or int(index.max()) >= batch:
        raise ValueError(f"negative_text_index must hold {batch} row indices (-1 for none), got {tuple(index.shape)}")
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

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As transformers', but strict: missing, unexpected or wrongly shaped tensors and unreadable weight files
        raise `TDDetrInputError` (see `td_detr.strict_loading`)."""
        return from_pretrained_strictly(super().from_pretrained, pretrained_model_name_or_path, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch defaults for leaf layers and N(0, 1) for the learned tokens and anchors, except that every ≥2-D
        weight inside the transformer layers is Xavier-uniform (the official `Transformer._reset_parameters`), and the
        decoder's last `bbox_embed` bias is zero. Leaf modules carry the tags set by [`mark_transformer_init`], since
        transformers does not call `_init_weights` on parameter-less containers of custom models."""
        xavier = getattr(module, "_td_detr_xavier", False)
        if isinstance(module, nn.Linear):
            if xavier:
                init.xavier_uniform_(module.weight)
            else:
                init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(module.in_features)
            if getattr(module, "_td_detr_zero_bias", False):
                init.zeros_(module.bias)
            else:
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.PReLU):
            init.constant_(module.weight, 0.25)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight)
        elif isinstance(module, MultiheadAttention):
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
        elif isinstance(module, TDDetrDynamicTokenizer):
            init.normal_(module.start_token)
        elif isinstance(module, TDDetrModel):
            init.normal_(module.global_token)
            init.normal_(module.global_position)


def mark_transformer_init(model: "TDDetrModel") -> None:
    """Tag the leaf layers whose weights the official code re-initialises with Xavier: everything inside the T2V,
    encoder and decoder stacks (attention projections, FFNs, the dynamics branch, the decoder MLPs)."""
    for stack in (model.t2v_layers, model.encoder_layers, model.decoder):
        for module in stack.modules():
            if isinstance(module, nn.Linear):
                module._td_detr_xavier = True
    for layer in model.decoder.layers:
        for attention in (layer.self_attention, layer.cross_attention):
            attention.out_proj._td_detr_zero_bias = True  # the attention's own reset zeroes it
    for stack in (model.t2v_layers, model.encoder_layers):
        for module in stack.modules():
            if isinstance(module, MultiheadAttention):
                module.out_proj._td_detr_zero_bias = True
    model.decoder.bbox_embed.layers[-1]._td_detr_zero_bias = True


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
        mark_transformer_init(self)
        self.post_init()

    def _check_inputs(self, video_features, text_features):
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

    def encode(self, video, video_mask, video_pos, text, text_mask, blocked=(None, None)):
        """T2V layers then the self-attention encoder. Returns (video memory [B, L, d], global memory [B, d])."""
        text_padding = ~text_mask.bool()
        if self.text_position is not None:
            text_pos = self.text_position.weight[: text.shape[1]].unsqueeze(0).expand_as(text)
        else:
            text_pos = torch.zeros_like(text)
        for layer in self.t2v_layers:
            video = layer(video, video_pos, text, text_pos, text_padding, self.dynamic_tokenizer, blocked)
        batch = video.shape[0]
        tokens = torch.cat((self.global_token.expand(batch, 1, -1), video), dim=1)
        positions = torch.cat((self.global_position.expand(batch, 1, -1), video_pos), dim=1)
        padding = torch.cat((video_mask.new_zeros(batch, 1, dtype=torch.bool), ~video_mask.bool()), dim=1)
        for layer in self.encoder_layers:
            tokens = layer(tokens, positions, padding)
        return tokens[:, 1:], tokens[:, 0]

    def forward(
        self,
        video_features: torch.Tensor,
        video_mask: torch.Tensor,
        text_features: torch.Tensor,
        text_mask: torch.Tensor,
        compute_negative: bool = False,
        negative_text_index: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TDDetrModelOutput:
        """
        Args:
            video_features: `[B, L, video_feature_size]` clip features (no TEF), zero-padded.
            video_mask: `[B, L]`, 1 for valid clips.
            text_features: `[B, T, text_feature_size]` token features, zero-padded.
            text_mask: `[B, T]`, 1 for valid tokens.
            compute_negative: also encode each video with a negative text (the negative pair).
            negative_text_index: `[B]` int, the row whose text is each row's negative (-1: none, any text is run and
                the loss ignores it). Default: the next row's text, as the official code does; the training collator
                always gives it (`td_detr.data.negatives`: never a query on the row's own videos).
        """
        self._check_inputs(video_features, text_features)
        video_mask = video_mask.to(video_features.dtype)
        if self.config.use_tef:
            video_features = torch.cat((video_features, temporal_endpoint_features(video_mask)), dim=-1)
        video = self.video_projection(video_features)
        text = self.text_projection(text_features)
        video_pos = video_position_embedding(video_mask, self.config.hidden_size).to(video.dtype)

        if compute_negative:
            # Positive and negative pairs share the video side; one batched pass of 2B is cheaper than two passes.
            index = negative_row_index(negative_text_index, text.shape[0], text.device)
            negative_text, negative_mask = text[index], text_mask[index]
            blocked = (None, None)
            if self.config.official_t2v_mask:  # the official code runs the negative pass as a batch of its own
                positive, negative = (self.official_blocked_pairs(video_mask, m) for m in (text_mask, negative_mask))
                blocked = tuple(torch.cat(pair) for pair in zip(positive, negative))
            memory, global_memory = self.encode(
                video.repeat(2, 1, 1),
                video_mask.repeat(2, 1),
                video_pos.repeat(2, 1, 1),
                torch.cat((text, negative_text)),
                torch.cat((text_mask, negative_mask)),
                blocked,
            )
            memory, negative_memory = memory.chunk(2)
            global_memory, negative_global = global_memory.chunk(2)
        else:
            blocked = self.official_blocked_pairs(video_mask, text_mask) if self.config.official_t2v_mask else (None, None)
            memory, global_memory = self.encode(video, video_mask, video_pos, text, text_mask, blocked)
            negative_memory = negative_global = None

        hidden_states, references = self.decoder(memory, video_pos, ~video_mask.bool(), self.anchors.weight)
        return TDDetrModelOutput(
            decoder_hidden_states=hidden_states,
            reference_anchors=references,
            video_memory=memory,
            global_memory=global_memory,
            negative_video_memory=negative_memory,
            negative_global_memory=negative_global,
        )


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
        clips = self.saliency_clip_projection(video_memory)
        global_token = self.saliency_global_projection(global_memory).unsqueeze(1)
        return (clips * global_token).sum(-1) / math.sqrt(self.config.hidden_size)

    def forward(
        self,
        video_features: torch.Tensor,
        video_mask: torch.Tensor,
        text_features: torch.Tensor,
        text_mask: torch.Tensor,
        labels: list[dict] | None = None,
        output_negative_saliency: bool | None = None,
        negative_text_index: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TDDetrMomentRetrievalOutput:
        """
        Args:
            video_features, video_mask, text_features, text_mask: as [`TDDetrModel.forward`].
            labels: per sample a dict with `spans` ([n, 2] normalised centre, width), `saliency_pos_labels` ([2]),
                `saliency_neg_labels` ([2]) and `saliency_all_labels` ([Lv]); gives `loss` and `loss_dict`.
            output_negative_saliency: compute the negative-pair saliency; defaults to True when training or when
                labels are given (the loss needs it) and False otherwise (inference skips that pass).
            negative_text_index: each row's negative text, as [`TDDetrModel.forward`].
            kwargs: other batch entries (e.g. `meta`) are accepted and ignored.
        """
        if output_negative_saliency is None:
            output_negative_saliency = self.training or labels is not None
        outputs = self.model(
            video_features, video_mask, text_features, text_mask, compute_negative=output_negative_saliency,
            negative_text_index=negative_text_index,
        )
        hidden_states = outputs.decoder_hidden_states
        logits = self.class_head(hidden_states)
        spans = (self.span_head(hidden_states) + inverse_sigmoid(outputs.reference_anchors)).sigmoid()
        saliency = self.saliency(outputs.video_memory, outputs.global_memory)
        negative_saliency = negative_pair_mask = None
        if outputs.negative_video_memory is not None:
            negative_saliency = self.saliency(outputs.negative_video_memory, outputs.negative_global_memory)
            negative_pair_mask = saliency.new_ones(saliency.shape[0])
            if negative_text_index is not None:
                negative_pair_mask = (torch.as_tensor(negative_text_index, device=saliency.device) >= 0).to(saliency.dtype)
        auxiliary = [{"logits": a, "pred_spans": b} for a, b in zip(logits[:-1], spans[:-1])]
        result = TDDetrMomentRetrievalOutput(
            logits=logits[-1],
            pred_spans=spans[-1],
            saliency_scores=saliency,
            negative_saliency_scores=negative_saliency,
            negative_pair_mask=negative_pair_mask,
            video_mask=video_mask.to(saliency.dtype),
            auxiliary_outputs=auxiliary if self.config.use_auxiliary_loss else None,
        )
        if labels is not None:
            result.loss, result.loss_dict = self.criterion(result, labels)
        return result

    def post_process(self, outputs: TDDetrMomentRetrievalOutput, durations, round_to_clip: bool | None = None):
        """Ranked windows `[start_s, end_s, score]` and valid-clip saliency per query; see
        [`post_process_moment_retrieval`]."""
        return post_process_moment_retrieval(
            outputs,
            durations,
            clip_length=self.config.clip_length,
            round_to_clip=self.config.round_to_clip if round_to_clip is None else round_to_clip,
            clamp=self.config.postprocess_clamp,
        )


__all__ = ["TDDetrPreTrainedModel", "TDDetrModel", "TDDetrForMomentRetrieval", "TDDetrModelOutput", "TDDetrMomentRetrievalOutput"]


def _register_auto_classes() -> None:
    from transformers import AutoConfig, AutoModel

    AutoConfig.register(TDDetrConfig.model_type, TDDetrConfig, exist_ok=True)
    AutoModel.register(TDDetrConfig, TDDetrModel, exist_ok=True)


_register_auto_classes()
