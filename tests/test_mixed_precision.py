"""The model under `torch.autocast("cpu", dtype=torch.bfloat16)`: GEMMs and attention run in bf16, the heads' outputs,
the losses and the matcher in fp32. Stated tolerances against the fp32 model on a small model (dropout off, so both
passes see the same function): every output within 0.05 absolute (bf16 keeps 8 significant bits, ~0.004 relative,
and the error adds up over a dozen layers; measured ≤ 0.018 over seeds 0-3), the loss within 1 % (measured ≤ 0.1 %),
gradients at cosine ≥ 0.99 (measured ≥ 0.999) and a relative error ≤ 0.1 (measured ≤ 0.042)."""

from __future__ import annotations

import pytest
import torch

from td_detr import TDDetrForMomentRetrieval

from model_utils import random_batch, simple_labels, tiny_config

BATCH, CLIPS = 4, 12
OUTPUTS = ("logits", "pred_spans", "saliency_scores", "negative_saliency_scores")


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def small_model(seed=0, **overrides):
    torch.manual_seed(seed)
    settings = dict(hidden_size=32, num_attention_heads=4, ffn_dim=64, dropout=0.0, input_dropout=0.0)
    return TDDetrForMomentRetrieval(tiny_config(**{**settings, **overrides})).train()


def gradient(model) -> torch.Tensor:
    flat = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return flat


@pytest.mark.parametrize("seed", [0, 1])
def test_bf16_forward_loss_and_gradients_match_fp32_within_tolerance(seed):
    model = small_model(seed)
    batch, labels = random_batch(model.config, batch=BATCH, clips=CLIPS, seed=seed), simple_labels(BATCH, CLIPS)
    reference = model(**batch, labels=labels)
    reference.loss.backward()
    reference_gradient = gradient(model)

    gemm_dtypes = []  # evidence that autocast reached the model: its linear layers ran in bf16
    hook = model.model.video_projection[-1].linear.register_forward_hook(lambda m, i, o: gemm_dtypes.append(o.dtype))
    with bf16():
        low = model(**batch, labels=labels)
    hook.remove()
    low.loss.backward()
    low_gradient = gradient(model)

    assert gemm_dtypes == [torch.bfloat16]
    for name in OUTPUTS:
        expected, got = getattr(reference, name), getattr(low, name)
        assert got.dtype == torch.float32, name  # heads' outputs in fp32 for the matcher, losses and ranking
        assert not torch.equal(got, expected), name  # bf16 did change the arithmetic
        torch.testing.assert_close(got, expected, atol=0.05, rtol=0, msg=name)
    assert low.loss.dtype == torch.float32 and all(v.dtype == torch.float32 for v in low.loss_dict.values())
    assert low.loss.item() == pytest.approx(reference.loss.item(), rel=0.01)
    assert torch.nn.functional.cosine_similarity(low_gradient, reference_gradient, dim=0) >= 0.99
    assert (low_gradient - reference_gradient).norm() <= 0.1 * reference_gradient.norm()


def test_bf16_training_decreases_the_loss():
    model = small_model(0)
    batch, labels = random_batch(model.config, batch=BATCH, clips=CLIPS, seed=0), simple_labels(BATCH, CLIPS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        with bf16():
            loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()  # outside autocast, as torch advises; the parameters and their gradients stay fp32
        optimizer.step()
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize(
    "overrides, checkpointing",
    [
        (dict(dropout=0.1, input_dropout=0.5, dropout_implementation="fast_cpu"), False),
        (dict(dropout=0.1, input_dropout=0.5, dropout_implementation="torch"), False),
        (dict(official_t2v_mask=True, dynamics_with_position=True), False),
        (dict(use_dynamics=False), True),
        (dict(), True),
    ],
    ids=["fast-dropout", "torch-dropout", "official-mask", "qd-detr-checkpointing", "td-detr-checkpointing"],
)
def test_every_model_path_trains_and_infers_under_bf16(overrides, checkpointing):
    """No dtype mismatch anywhere: dropout kinds, the official mask, padding, chosen negatives, activation
    checkpointing (recomputed under the same autocast), inference and post-processing."""
    model = small_model(0, **overrides)
    if checkpointing:
        model.activation_checkpointing_enable()
    batch = random_batch(model.config, batch=BATCH, clips=CLIPS, seed=0)
    batch["video_mask"][1, 9:] = 0  # padded clips and tokens
    batch["text_mask"][2, 4:] = 0
    with bf16():
        outputs = model(**batch, labels=simple_labels(BATCH, CLIPS), negative_text_index=torch.tensor([2, -1, 0, 1]))
    outputs.loss.backward()
    assert torch.isfinite(outputs.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad(), bf16():
        outputs = model(**batch)
    predictions = model.post_process(outputs, durations=[2.0 * CLIPS] * BATCH)
    assert len(predictions) == BATCH and len(predictions[1]["pred_saliency_scores"]) == 9
    scores = [window[2] for window in predictions[0]["pred_relevant_windows"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
