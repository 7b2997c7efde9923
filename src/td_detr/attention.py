"""Attention blocks used by the TD-DETR transformer, batch-first, on `scaled_dot_product_attention`.

`MultiheadAttention` keeps the parameter layout of `torch.nn.MultiheadAttention` (`in_proj_weight`, `in_proj_bias`,
`out_proj`), so weights trained with it load unchanged; `ConditionalAttention` is the DETR-style attention without
input projections (queries and keys arrive projected, possibly wider than the values) used by the DAB decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import FastDropout, attention_with_dropout


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    batch, length, width = x.shape
    return x.view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


def _attend(query, key, value, key_padding_mask, dropout: nn.Dropout, blocked=None) -> torch.Tensor:
    """Heads-split SDPA with dropout `dropout.p` on the weights while `dropout` is in training mode.
    `key_padding_mask` is [B, Lk] with True at padded keys; `blocked` an optional [B, H, Lq, Lk] mask with True at
    pairs that may not attend. Every query must keep at least one key."""
    allowed = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
    if blocked is not None:
        allowed = ~blocked if allowed is None else allowed & ~blocked
    p = dropout.p if dropout.training else 0.0
    if p > 0.0 and isinstance(dropout, FastDropout) and query.device.type == "cpu":
        return attention_with_dropout(query, key, value, allowed, p)  # SDPA's CPU dropout is the slow math path
    return F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, dropout_p=p)


class MultiheadAttention(nn.Module):
    """Standard multi-head attention (input projections of q, k, v, then an output projection)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = nn.Dropout(dropout)  # on the attention weights
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * hidden_size))
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """`torch.nn.MultiheadAttention`'s scheme: Xavier-uniform input projections, zero biases."""
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, blocked=None, key_rows=None) -> torch.Tensor:
        """`key_rows`: optional [B] index, the key / value row of each query row: keys and values are projected
        once per distinct row and then indexed (the same result as projecting `key[key_rows]`, with fewer FLOPs)."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        k, v = F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
        if key_rows is not None:
            k, v = k[key_rows], v[key_rows]
        q = _split_heads(F.linear(query, w_q, b_q), self.num_heads)
        k, v = _split_heads(k, self.num_heads), _split_heads(v, self.num_heads)
        attended = _attend(q, k, v, key_padding_mask, self.dropout, blocked)
        return self.out_proj(_merge_heads(attended))


def official_t2v_blocked_pairs(video_padding, text_padding, num_heads: int) -> torch.Tensor:
    """The (video × text) attention mask exactly as the official QD-DETR / TD-DETR T2V layers build it, [B, H, Lv, Lt].

    The official code blocks (padded clip × padded token) pairs of each sample, but repeats that [B, Lv, Lt] mask
    head-major (`repeat(H, 1, 1)`) while `nn.MultiheadAttention` reads it batch-major, so head h of sample b gets the
    mask of sample (b·H + h) mod B, and valid pairs can be blocked: official outputs depend on the batch. Only used
    with `official_t2v_mask=True` (converted checkpoints reproducing official numbers).
    """
    pairs = video_padding[:, :, None] & text_padding[:, None, :]
    batch = pairs.shape[0]
    return pairs.repeat(num_heads, 1, 1).view(batch, num_heads, *pairs.shape[1:])


class ConditionalAttention(nn.Module):
    """Attention without input projections; queries / keys may be wider than values (conditional cross-attention
    concatenates content and position parts per head). Scale = (query head width)^-1/2."""

    def __init__(self, value_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = nn.Dropout(dropout)  # on the attention weights
        self.out_proj = nn.Linear(value_size, value_size)

    def forward(self, query, key, value, key_padding_mask=None) -> torch.Tensor:
        q, k, v = (_split_heads(x, self.num_heads) for x in (query, key, value))
        attended = _attend(q, k, v, key_padding_mask, self.dropout)
        return self.out_proj(_merge_heads(attended))
