"""`td_detr.row_chunks`: a training batch's forward and backward in row chunks leaves the gradient of the whole batch
(dropout off: the same function; float rounding only), reports the whole batch's loss terms, and trains through
`TDDetrTrainer(row_chunk_size=...)` to the same weights."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainingArguments

from td_detr import TDDetrForMomentRetrieval
from td_detr.row_chunks import chunk_inputs, chunked_forward_backward
from td_detr.training import TDDetrTrainer

from model_utils import random_batch, simple_labels, tiny_config

ROWS, CLIPS = 7, 12


def model(**overrides):
    torch.manual_seed(0)
    settings = dict(hidden_size=32, num_attention_heads=4, ffn_dim=64, dropout=0.0, input_dropout=0.0)
    return TDDetrForMomentRetrieval(tiny_config(**{**settings, **overrides})).train()


def batch(negatives=True):
    config = tiny_config()
    inputs = random_batch(config, batch=ROWS, clips=CLIPS, seed=3)
    inputs["video_mask"][1, 8:] = 0
    inputs["text_mask"][4, 3:] = 0
    labels = simple_labels(ROWS, CLIPS)  # 1 or 2 windows per row: chunks hold different numbers of matched pairs
    labels[5]["spans"] = torch.tensor([[0.5, 0.2], [0.1, 0.1], [0.8, 0.3]])
    inputs["labels"] = labels
    if negatives:  # negatives across chunk borders, one row without a negative
        inputs["negative_text_index"] = torch.tensor([6, 3, -1, 0, 2, 1, 4])
    return inputs


def gradients(trained):
    return {name: p.grad.clone() for name, p in trained.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk_rows", [1, 3, 4])
@pytest.mark.parametrize("negatives", [True, False], ids=["chosen-negatives", "rolled-negatives"])
@pytest.mark.parametrize("overrides", [dict(), dict(use_dynamics=False), dict(official_t2v_mask=True)],
                         ids=["td-detr", "qd-detr", "official-mask"])
def test_chunks_give_the_whole_batch_loss_and_gradient(chunk_rows, negatives, overrides):
    whole = model(**overrides)
    inputs = batch(negatives)
    outputs = whole(**inputs)
    outputs.loss.backward()
    chunked = model(**overrides)
    loss, terms = chunked_forward_backward(chunked, inputs, chunk_rows)
    assert loss.item() == pytest.approx(outputs.loss.item(), rel=1e-5)
    assert set(terms) == set(outputs.loss_dict)
    for name, value in outputs.loss_dict.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-5, abs=1e-7), name
    expected, got = gradients(whole), gradients(chunked)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_chunk_brings_its_negatives_texts_along():
    inputs = batch()
    picked = chunk_inputs(inputs, slice(0, 3))
    assert picked["video_features"].shape[0] == 3 and len(picked["labels"]) == 3
    assert picked["text_features"].shape[0] == 6  # 3 own texts + the texts of rows 6, 3 and a placeholder
    assert torch.equal(picked["text_features"][3], inputs["text_features"][6])
    assert torch.equal(picked["text_features"][4], inputs["text_features"][3])
    assert picked["negative_text_index"].tolist() == [3, 4, -1]


def test_text_rows_past_the_batch_need_negative_text_index():
    inputs = batch()
    inputs["text_features"] = torch.cat((inputs["text_features"], inputs["text_features"][:2]))
    inputs["text_mask"] = torch.cat((inputs["text_mask"], inputs["text_mask"][:2]))
    inputs.pop("negative_text_index")
    with pytest.raises(ValueError, match="text rows"):
        model()(**inputs)


def test_trainer_with_row_chunks_steps_like_the_whole_batch(tmp_path, monkeypatch):
    import td_detr.row_chunks

    calls = []
    original = td_detr.row_chunks.chunked_forward_backward
    monkeypatch.setattr(td_detr.row_chunks, "chunked_forward_backward",
                        lambda *args, **kwargs: calls.append(args[2]) or original(*args, **kwargs))
    inputs = batch()
    rows = [dict(video_features=inputs["video_features"][i], video_mask=inputs["video_mask"][i],
                 text_features=inputs["text_features"][i], text_mask=inputs["text_mask"][i],
                 labels=inputs["labels"][i]) for i in range(ROWS)]

    def collate(items):
        out = {key: torch.stack([item[key] for item in items]) for key in items[0] if key != "labels"}
        out["labels"] = [item["labels"] for item in items]
        return out

    def trained(chunk):
        net = model()
        args = TrainingArguments(
            output_dir=str(tmp_path / f"chunk{chunk}"), per_device_train_batch_size=ROWS, max_steps=1,
            learning_rate=0.5, optim="sgd", weight_decay=0.0, lr_scheduler_type="constant", max_grad_norm=1e9,
            remove_unused_columns=False, label_names=["labels"], report_to="none", use_cpu=True, save_strategy="no",
            logging_strategy="no", dataloader_num_workers=0,
        )
        trainer = TDDetrTrainer(model=net, args=args, train_dataset=rows, data_collator=collate, row_chunk_size=chunk)
        trainer.train()
        return net.state_dict()

    start = model().state_dict()
    whole, chunked = trained(None), trained(3)
    assert calls == [3]  # only the chunked trainer went through the chunks
    moved = sum((whole[k] - start[k]).abs().sum().item() for k in start)
    assert moved > 1.0  # the step moved the weights
    difference = sum((whole[k] - chunked[k]).abs().sum().item() for k in start)
    assert difference < 1e-4 * moved
