"""Attention blocks used by the TD-DETR transformer, batch-first, on `scaled_dot_product_attention`.

`MultiheadAttention` keeps the parameter layout of `torch.nn.MultiheadAttention` (`in_proj_weight`, `in_proj_bias`,
`out_proj`), so weights trained with it load unchanged; `ConditionalAttention` is the DETR-style attention without
input projections (queries and keys arrive projected, possibly wider than the values) used by the DAB decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    batch, length, width = x.shape
    return x.view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


def _attend(query, key, value, key_padding_mask, dropout: float) -> torch.Tensor:
    """Heads-split SDPA. `key_padding_mask` is [B, Lk] with True at padded keys; every query must see one valid key."""
    attn_mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout)


class MultiheadAttention(nn.Module):
    """Standard multi-head attention (input projections of q, k, v, then an output projection)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * hidden_size))
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """`torch.nn.MultiheadAttention`'s scheme: Xavier-uniform input projections, zero biases."""
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None) -> torch.Tensor:
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = _split_heads(F.linear(query, w_q, b_q), self.num_heads)
        k = _split_heads(F.linear(key, w_k, b_k), self.num_heads)
        v = _split_heads(F.linear(value, w_v, b_v), self.num_heads)
        attended = _attend(q, k, v, key_padding_mask, self.dropout if self.training else 0.0)
        return self.out_proj(_merge_heads(attended))


class ConditionalAttention(nn.Module):
    """Attention without input projections; queries / keys may be wider than values (conditional cross-attention
    concatenates content and position parts per head). Scale = (query head width)^-1/2."""

    def __init__(self, value_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.out_proj = nn.Linear(value_size, value_size)

    def forward(self, query, key, value, key_padding_mask=None) -> torch.Tensor:
        q, k, v = (_split_heads(x, self.num_heads) for x in (query, key, value))
        attended = _attend(q, k, v, key_padding_mask, self.dropout if self.training else 0.0)
        return self.out_proj(_merge_heads(attended))
