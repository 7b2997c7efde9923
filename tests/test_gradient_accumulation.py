"""Gradient accumulation: TDDetrTrainer's loss is a batch mean, so the Trainer must divide each micro-batch loss by
the accumulation steps. One SGD step on 4 samples as 2 micro-batches of 2 then moves the weights exactly as one
batch of 4 does (a missing division would double the step)."""

from __future__ import annotations

import torch
from transformers import TrainingArguments

from td_detr import TDDetrForMomentRetrieval
from td_detr.training import TDDetrTrainer

from model_utils import random_batch, tiny_config

SAMPLES, CLIPS = 4, 10
LR = 0.5


def samples():
    """Per-sample rows whose loss is a per-sample mean: one window each, no saliency term (its negative pair is
    the next sample of the *batch*, so it depends on how samples are grouped)."""
    batch = random_batch(tiny_config(), batch=SAMPLES, clips=CLIPS, tokens=6, seed=1)
    rows = []
    for i in range(SAMPLES):
        row = {key: value[i] for key, value in batch.items()}
        row["labels"] = {"spans": torch.tensor([[0.2 + 0.15 * i, 0.1 + 0.05 * i]])}
        rows.append(row)
    return rows


def collate(rows):
    batch = {key: torch.stack([row[key] for row in rows]) for key in rows[0] if key != "labels"}
    batch["labels"] = [row["labels"] for row in rows]
    return batch


def model():
    torch.manual_seed(0)
    return TDDetrForMomentRetrieval(tiny_config(dropout=0.0, input_dropout=0.0, saliency_loss_weight=0.0))


def one_step(tmp_path, batch_size, accumulation):
    trained = model()
    args = TrainingArguments(
        output_dir=str(tmp_path / f"b{batch_size}x{accumulation}"), per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=LR, optim="sgd", weight_decay=0.0,
        lr_scheduler_type="constant", max_grad_norm=1e9, warmup_steps=0, remove_unused_columns=False,
        label_names=["labels"], report_to="none", use_cpu=True, save_strategy="no", logging_strategy="no",
        dataloader_num_workers=0,
    )
    TDDetrTrainer(model=trained, args=args, train_dataset=samples(), data_collator=collate).train()
    return trained.state_dict()


def test_micro_batches_step_like_the_whole_batch(tmp_path):
    rows = samples()
    reference = model()
    start = {key: value.clone() for key, value in reference.state_dict().items()}
    reference(**collate(rows)).loss.backward()
    # Precondition: the loss is a per-sample mean, so two half-batch means average to the full-batch mean.
    halves = model()
    loss = sum(halves(**collate(rows[i:i + 2])).loss for i in (0, 2)) / 2
    loss.backward()
    for (name, a), b in zip(reference.named_parameters(), halves.parameters()):
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name
    expected = {name: start[name] - LR * p.grad for name, p in reference.named_parameters() if p.grad is not None}

    def distance(weights):  # summed |weights - expected| over every updated tensor
        return sum((weights[name] - value).abs().sum().item() for name, value in expected.items())

    step = distance(start)  # how far the step moves the weights; a missing division would be off by as much
    assert step > 1.0
    assert distance(one_step(tmp_path, batch_size=4, accumulation=1)) < 1e-4 * step
    assert distance(one_step(tmp_path, batch_size=2, accumulation=2)) < 1e-4 * step
