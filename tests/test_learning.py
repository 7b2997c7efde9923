"""The model can learn: on a handful of generated samples whose text names what happens in the moment, a few hundred
optimiser steps put the top-1 window on the ground truth.

This measures fitting capacity, so dropout is off (it regularises against exactly this memorisation). The slow part of
DETR-style training is the classifier learning which query's span fits; with dropout on, 12 samples need about 800
steps at lr 1e-3 (measured over seeds 1-2), with it off about 200-300 at 2e-3.
"""

import pytest
import torch

from td_detr import TDDetrForMomentRetrieval
from td_detr.span_utils import span_cxw_to_xx, temporal_iou

from model_utils import tiny_config

pytestmark = pytest.mark.slow  # 300 optimizer steps per case

NUM_SAMPLES, CLIPS, TOKENS, ACTIONS = 12, 24, 4, 4


def make_samples(config, seed=0):
    generator = torch.Generator().manual_seed(seed)
    signatures = torch.randn(ACTIONS, config.video_feature_size, generator=generator)
    words = torch.randn(ACTIONS, config.text_feature_size, generator=generator)
    video = 0.3 * torch.randn(NUM_SAMPLES, CLIPS, config.video_feature_size, generator=generator)
    text = 0.3 * torch.randn(NUM_SAMPLES, TOKENS, config.text_feature_size, generator=generator)
    labels, windows = [], []
    for i in range(NUM_SAMPLES):
        action = i % ACTIONS
        length = [3, 6, 10][i % 3]
        start = int(torch.randint(0, CLIPS - length + 1, (1,), generator=generator))
        video[i, start : start + length] += signatures[action]
        text[i, 1] += words[action]
        saliency = torch.zeros(CLIPS)
        saliency[start : start + length] = 12.0
        outside = [c for c in range(CLIPS) if not start <= c < start + length]
        labels.append(
            dict(
                spans=torch.tensor([[(start + length / 2) / CLIPS, length / CLIPS]]),
                saliency_pos_labels=torch.tensor([start, start + length - 1]),
                saliency_neg_labels=torch.tensor([outside[0], outside[-1]]),
                saliency_all_labels=saliency,
            )
        )
        windows.append([start / CLIPS, (start + length) / CLIPS])
    batch = dict(
        video_features=video, video_mask=torch.ones(NUM_SAMPLES, CLIPS), text_features=text,
        text_mask=torch.ones(NUM_SAMPLES, TOKENS),
    )
    return batch, labels, torch.tensor(windows)


@pytest.mark.parametrize("use_dynamics", [True, False], ids=["td-detr", "qd-detr-baseline"])
def test_top1_window_reaches_the_ground_truth(use_dynamics):
    torch.manual_seed(0)
    config = tiny_config(hidden_size=32, num_attention_heads=4, ffn_dim=64, use_dynamics=use_dynamics,
                         num_queries=5, dropout=0.0, input_dropout=0.0)
    model = TDDetrForMomentRetrieval(config)
    batch, labels, windows = make_samples(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    model.train()
    for _ in range(300):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    with torch.no_grad():
        outputs = model(**batch)
    best = outputs.logits.softmax(-1)[..., 0].argmax(dim=1)
    top1 = span_cxw_to_xx(outputs.pred_spans[torch.arange(NUM_SAMPLES), best])
    iou = torch.diagonal(temporal_iou(top1, windows)[0])
    assert (iou >= 0.7).float().mean().item() >= 0.9, iou
