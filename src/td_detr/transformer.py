"""The QD-DETR transformer (reference-qd-detr.md §2), batch-first: input projections, text-to-video (T2V) layers
with the TD-DETR dynamics, the self-attention encoder over `[global token; video]`, and the DAB-style decoder that
refines (centre, width) anchors layer by layer.

Layer order, activations and normalisation placement follow the official code exactly (post-norm everywhere, PReLU in
the FFNs, the T2V layer's unusual residual), so that converted official checkpoints reproduce their outputs.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention import ConditionalAttention, MultiheadAttention
from .dynamics import TDDetrDynamicTokenizer, TDDetrTextDynamicsInteraction
from .position_encoding import anchor_sine_embedding
from .span_utils import inverse_sigmoid


def make_activation(name: str) -> nn.Module:
    """FFN activation; PReLU keeps PyTorch's default single learnable slope."""
    return {"prelu": nn.PReLU, "relu": nn.ReLU, "gelu": nn.GELU}[name]()


class MLP(nn.Module):
    """`num_layers` linear layers with ReLU between them (DETR's MLP)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_layers: int):
        super().__init__()
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip(sizes, sizes[1:] + [output_size]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class InputProjectionBlock(nn.Module):
    """LayerNorm → Dropout → Linear (→ ReLU): one block of an input projection."""

    def __init__(self, input_size: int, output_size: int, dropout: float, relu: bool):
        super().__init__()
        self.norm = nn.LayerNorm(input_size)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(input_size, output_size)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(self.dropout(self.norm(x)))
        return torch.relu(x) if self.relu else x


class InputProjection(nn.Sequential):
    """`num_blocks` projection blocks to the model width; all but the last end with ReLU."""

    def __init__(self, input_size: int, hidden_size: int, num_blocks: int, dropout: float):
        sizes = [input_size] + [hidden_size] * num_blocks
        super().__init__(
            *(InputProjectionBlock(sizes[i], sizes[i + 1], dropout, relu=i < num_blocks - 1) for i in range(num_blocks))
        )


class FeedForward(nn.Module):
    """Linear → activation → Dropout → Linear."""

    def __init__(self, hidden_size: int, ffn_dim: int, dropout: float, activation: str):
        super().__init__()
        self.linear1 = nn.Linear(hidden_size, ffn_dim)
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class TDDetrT2VLayer(GradientCheckpointingLayer):
    """Text-to-video layer: video tokens attend to the text (query = video + position, key = text + text position,
    value = text); with dynamics, the dynamic tokens attend to the same text and are mixed in with weight 1−β.
    Residual order as in QD-DETR: `x = v + Drop(attn)`, `y = LN2(x + Drop(FFN(LN1(x))))` (the FFN reads the normalised
    x, the residual adds the raw x)."""

    def __init__(self, config):
        super().__init__()
        hidden, dropout = config.hidden_size, config.dropout
        self.cross_attention = MultiheadAttention(hidden, config.num_attention_heads, dropout)
        self.attention_dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(hidden)
        self.feed_forward = FeedForward(hidden, config.ffn_dim, dropout, config.activation_function)
        self.ffn_dropout = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(hidden)
        self.dynamics_with_position = config.dynamics_with_position
        self.dynamics = (
            TDDetrTextDynamicsInteraction(
                hidden, config.num_attention_heads, dropout, config.dynamics_beta, config.dynamics_fusion
            )
            if config.use_dynamics
            else None
        )

    def forward(self, video, video_pos, text, text_pos, text_padding_mask, tokenizer: TDDetrDynamicTokenizer | None,
                blocked=(None, None), text_rows=None):
        """`blocked`: optional extra masks ([B, H, Lv, Lt], True = may not attend) for the video→text and the
        dynamics→text attention (only the official-mask reproduction uses them). `text_rows`: the text row of each
        video row (the negative pass reuses the B texts); `text_padding_mask` is per video row."""
        query = video + video_pos
        text_keys = text + text_pos
        attended = self.attention_dropout(
            self.cross_attention(query, text_keys, text, text_padding_mask, blocked[0], text_rows)
        )
        if self.dynamics is None:
            x = video + attended
        else:
            dynamic_tokens = tokenizer(query if self.dynamics_with_position else video)
            x = self.dynamics(dynamic_tokens, video, attended, text_keys, text, text_padding_mask, blocked[1], text_rows)
        return self.norm2(x + self.ffn_dropout(self.feed_forward(self.norm1(x))))


class TDDetrEncoderLayer(GradientCheckpointingLayer):
    """Post-norm self-attention layer: q = k = x + pos, v = x."""

    def __init__(self, config):
        super().__init__()
        hidden, dropout = config.hidden_size, config.dropout
        self.self_attention = MultiheadAttention(hidden, config.num_attention_heads, dropout)
        self.attention_dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(hidden)
        self.feed_forward = FeedForward(hidden, config.ffn_dim, dropout, config.activation_function)
        self.ffn_dropout = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x, pos, padding_mask):
        query = x + pos
        x = self.norm1(x + self.attention_dropout(self.self_attention(query, query, x, padding_mask)))
        return self.norm2(x + self.ffn_dropout(self.feed_forward(x)))


class TDDetrDecoderLayer(GradientCheckpointingLayer):
    """Conditional-DETR decoder layer: self-attention over the queries with separately projected content and
    position parts, then cross-attention to the video memory whose per-head queries / keys concatenate content and
    (sine) position parts. The query position enters the cross-attention content only in the first layer."""

    def __init__(self, config, is_first: bool):
        super().__init__()
        hidden, dropout, heads = config.hidden_size, config.dropout, config.num_attention_heads
        self.num_heads = heads
        self.is_first = is_first
        for name in ("sa_qcontent_proj", "sa_qpos_proj", "sa_kcontent_proj", "sa_kpos_proj", "sa_v_proj"):
            setattr(self, name, nn.Linear(hidden, hidden))
        self.self_attention = ConditionalAttention(hidden, heads, dropout)
        self.norm1 = nn.LayerNorm(hidden)
        names = ["ca_qcontent_proj", "ca_kcontent_proj", "ca_kpos_proj", "ca_v_proj", "ca_qpos_sine_proj"]
        if is_first:
            names.append("ca_qpos_proj")
        for name in names:
            setattr(self, name, nn.Linear(hidden, hidden))
        self.cross_attention = ConditionalAttention(hidden, heads, dropout)
        self.norm2 = nn.LayerNorm(hidden)
        self.feed_forward = FeedForward(hidden, config.ffn_dim, dropout, config.activation_function)
        self.norm3 = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def _per_head_concat(self, content: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = content.shape
        head_dim = hidden // self.num_heads
        return torch.cat(
            (content.view(batch, length, self.num_heads, head_dim), position.view(batch, length, self.num_heads, head_dim)),
            dim=-1,
        ).view(batch, length, 2 * hidden)

    def forward(self, queries, memory, memory_pos, memory_padding_mask, query_pos, query_sine_embed):
        q = self.sa_qcontent_proj(queries) + self.sa_qpos_proj(query_pos)
        k = self.sa_kcontent_proj(queries) + self.sa_kpos_proj(query_pos)
        queries = self.norm1(queries + self.dropout(self.self_attention(q, k, self.sa_v_proj(queries))))

        q_content = self.ca_qcontent_proj(queries)
        k_content = self.ca_kcontent_proj(memory)
        k_pos = self.ca_kpos_proj(memory_pos)
        if self.is_first:
            q_content = q_content + self.ca_qpos_proj(query_pos)
            k_content = k_content + k_pos
        q = self._per_head_concat(q_content, self.ca_qpos_sine_proj(query_sine_embed))
        k = self._per_head_concat(k_content, k_pos)
        attended = self.cross_attention(q, k, self.ca_v_proj(memory), memory_padding_mask)
        queries = self.norm2(queries + self.dropout(attended))
        return self.norm3(queries + self.dropout(self.feed_forward(queries)))


class TDDetrDecoder(nn.Module):
    """DAB-DETR-style decoder. Each layer embeds its current anchors (centre, width) with sines, derives the query
    position (`ref_point_head`), scales the sine embedding by the content (`query_scale`, from layer 1 on) and by a
    learned width ratio (`ref_anchor_head`, width-modulated attention), runs the layer, then refines the anchors
    with `bbox_embed`. Returns the normed hidden states of every layer and the anchors each layer *received*
    (the refined anchors keep their gradient in the returned list; the copy fed onward is detached)."""

    def __init__(self, config):
        super().__init__()
        hidden = config.hidden_size
        self.layers = nn.ModuleList(TDDetrDecoderLayer(config, is_first=i == 0) for i in range(config.decoder_layers))
        self.norm = nn.LayerNorm(hidden)
        self.query_scale = MLP(hidden, hidden, hidden, 2)
        self.ref_point_head = MLP(hidden, hidden, hidden, 2)
        self.ref_anchor_head = MLP(hidden, hidden, 1, 2)
        self.bbox_embed = MLP(hidden, hidden, 2, 3)
        self.hidden_size = hidden

    def forward(self, memory, memory_pos, memory_padding_mask, anchors_unsigmoid):
        batch = memory.shape[0]
        anchors = anchors_unsigmoid.sigmoid().unsqueeze(0).expand(batch, -1, -1)
        queries = memory.new_zeros(batch, anchors.shape[1], self.hidden_size)
        hidden_states, references = [], [anchors]
        for index, layer in enumerate(self.layers):
            sine_embed = anchor_sine_embedding(anchors, self.hidden_size)
            query_pos = self.ref_point_head(sine_embed)
            if index > 0:
                sine_embed = sine_embed * self.query_scale(queries)
            width_ratio = self.ref_anchor_head(queries).sigmoid()[..., 0] / anchors[..., 1]
            sine_embed = sine_embed * width_ratio.unsqueeze(-1)
            queries = layer(queries, memory, memory_pos, memory_padding_mask, query_pos, sine_embed)
            refined = (self.bbox_embed(queries) + inverse_sigmoid(anchors)).sigmoid()
            if index < len(self.layers) - 1:
                references.append(refined)
            anchors = refined.detach()
            hidden_states.append(self.norm(queries))
        return torch.stack(hidden_states), torch.stack(references)
