"""Tiny TD-DETR configs and generated batches shared by the model tests."""

from __future__ import annotations

import torch

from td_detr import TDDetrConfig


def tiny_config(**overrides) -> TDDetrConfig:
    settings = dict(
        video_feature_size=12,
        text_feature_size=8,
        hidden_size=16,
        num_attention_heads=2,
        ffn_dim=32,
        t2v_layers=2,
        encoder_layers=2,
        decoder_layers=2,
        num_queries=5,
        max_query_length=8,
    )
    settings.update(overrides)
    return TDDetrConfig(**settings)


def random_batch(config: TDDetrConfig, batch=3, clips=10, tokens=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, clips, config.video_feature_size, generator=generator)
    text = torch.randn(batch, tokens, config.text_feature_size, generator=generator)
    return dict(
        video_features=video,
        video_mask=torch.ones(batch, clips),
        text_features=text,
        text_mask=torch.ones(batch, tokens),
    )


def simple_labels(batch: int, clips: int) -> list[dict]:
    labels = []
    for row in range(batch):
        saliency = torch.zeros(clips)
        saliency[2:5] = torch.tensor([4.0, 12.0, 7.0])
        labels.append(
            dict(
                spans=torch.tensor([[0.35, 0.3]]) if row % 2 == 0 else torch.tensor([[0.35, 0.3], [0.8, 0.2]]),
                saliency_pos_labels=torch.tensor([3, 2]),
                saliency_neg_labels=torch.tensor([2, 8]),
                saliency_all_labels=saliency,
            )
        )
    return labels
