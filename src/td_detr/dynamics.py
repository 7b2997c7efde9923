"""Dynamics enhancement (paper §3.2): the dynamic tokenizer and the text-dynamics interaction.

The dynamic tokenizer prepends a learnable start token `st` to the video tokens and takes element-wise differences
of consecutive tokens (Eq. 2–3): `T = {v1 − st, v2 − v1, …, vL − vL−1}`. The text-dynamics interaction projects those
tokens, cross-attends them to the same text keys / values as the video tokens (Eq. 4–5, a separate attention), and
mixes the result into the video stream with weight 1−β (Eq. 6). One interaction lives in every T2V layer; the start
token is shared by all layers (official code).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiheadAttention


class TDDetrDynamicTokenizer(nn.Module):
    """Eq. 2–3: differences of consecutive video tokens, the first one taken against a learnable start token."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.start_token = nn.Parameter(torch.randn(hidden_size))  # N(0, 1), as the official nn.Embedding

    def forward(self, video_tokens: torch.Tensor) -> torch.Tensor:
        """[B, L, d] → [B, L, d]. Padding after the valid clips does not change the valid outputs."""
        start = self.start_token.to(video_tokens.dtype).expand(video_tokens.shape[0], 1, -1)  # autocast: keep the dtype
        previous = torch.cat((start, video_tokens[:, :-1]), dim=1)
        return video_tokens - previous


class DynamicsProjection(nn.Module):
    """Official `flow_proj`: two LayerNorm → Dropout → Linear → ReLU blocks on the dynamic tokens."""

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(2))
        self.linears = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(2))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, linear in zip(self.norms, self.linears):
            x = torch.relu(linear(self.dropout(norm(x))))
        return x


class TDDetrTextDynamicsInteraction(nn.Module):
    """Eq. 4–6 inside one T2V layer: project the dynamic tokens, attend them to the text, and fuse with weight 1−β.

    Fusion, given the layer input `v` and its video→text attention output `a` (already dropped out):
    - `"residual"` (paper Eq. 6 as written, and the official code): `β·v + (1−β)·T' + a`;
    - `"scaled"`: `β·(v + a) + (1−β)·T'`.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float, beta: float, fusion: str):
        super().__init__()
        self.projection = DynamicsProjection(hidden_size, dropout)
        self.attention = MultiheadAttention(hidden_size, num_heads, dropout)
        self.beta = beta
        self.fusion = fusion

    def forward(self, dynamic_tokens, video, attended_video, text_keys, text, text_padding_mask, blocked=None,
                text_rows=None):
        text_guided = self.attention(self.projection(dynamic_tokens), text_keys, text, text_padding_mask, blocked,
                                     text_rows)
        if self.fusion == "scaled":
            return self.beta * (video + attended_video) + (1 - self.beta) * text_guided
        return self.beta * video + (1 - self.beta) * text_guided + attended_video
