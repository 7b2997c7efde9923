"""DataCollatorForMomentRetrieval: padding, masks, labels and meta on hand-computed rows; construction; errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from td_detr.data.collator import DataCollatorForMomentRetrieval
from td_detr.errors import TDDetrInputError


def qvh_row(qid=1, clips=3, tokens=2, windows=((2.0, 6.0),), clip_ids=(1, 2), scores=((1, 1, 1), (4, 4, 4)), vid=None):
    return {
        "qid": qid,
        "query": f"query {qid}",
        "vid": vid or f"vid{qid}",
        "duration": 2.0 * clips,
        "video_features": np.arange(clips * 4, dtype=np.float32).reshape(clips, 4) + 1,
        "text_features": np.full((tokens, 3), qid, dtype=np.float32),
        "relevant_windows": [list(w) for w in windows],
        "relevant_clip_ids": list(clip_ids),
        "saliency_scores": [list(s) for s in scores],
    }


def charades_row(qid=7, clips=6, window=(1.5, 4.2), duration=12.0):
    return {
        "qid": qid,
        "query": "a person opens a door.",
        "vid": "AO8RW",
        "duration": duration,
        "video_features": np.ones((clips, 4), dtype=np.float32),
        "text_features": np.ones((4, 3), dtype=np.float32),
        "relevant_windows": [list(window)],
        "relevant_clip_ids": [],
        "saliency_scores": [],
    }


def test_padding_and_masks_hand_computed():
    rows = [qvh_row(1, clips=3, tokens=2), qvh_row(2, clips=5, tokens=4, windows=((0.0, 4.0),), clip_ids=(0, 1))]
    batch = DataCollatorForMomentRetrieval(clip_length=2.0)(rows)
    assert batch["video_features"].shape == (2, 5, 4) and batch["text_features"].shape == (2, 4, 3)
    assert batch["video_features"].dtype == torch.float32
    torch.testing.assert_close(batch["video_mask"], torch.tensor([[1.0, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    torch.testing.assert_close(batch["text_mask"], torch.tensor([[1.0, 1, 0, 0], [1, 1, 1, 1]]))
    np.testing.assert_array_equal(batch["video_features"][0, :3].numpy(), rows[0]["video_features"])
    assert batch["video_features"][0, 3:].abs().sum() == 0 and batch["text_features"][0, 2:].abs().sum() == 0
    np.testing.assert_array_equal(batch["text_features"][1].numpy(), rows[1]["text_features"])


def test_qvhighlights_labels_hand_computed():
    batch = DataCollatorForMomentRetrieval(clip_length=2.0)([qvh_row(clips=5)])
    labels = batch["labels"][0]
    # [2, 6] s over 5 clips x 2 s: (centre 0.4, width 0.4)
    torch.testing.assert_close(labels["spans"], torch.tensor([[0.4, 0.4]]))
    torch.testing.assert_close(labels["saliency_all_labels"], torch.tensor([0.0, 3, 12, 0, 0]))
    assert labels["saliency_pos_labels"].dtype == torch.long and labels["saliency_pos_labels"].shape == (2,)
    assert labels["saliency_pos_labels"][0] == 2 and labels["saliency_neg_labels"][0] == 1
    assert labels["saliency_pos_labels"][1] in (1, 2) and labels["saliency_neg_labels"][1] in (0, 3, 4)
    assert batch["meta"][0] == {
        "qid": 1, "vid": "vid1", "query": "query 1", "clip_length": 2.0, "synthetic": False, "duration": 10.0,
        "relevant_windows": [[2.0, 6.0]],
    }


def test_charades_pseudo_labels_both_clip_modes():
    by_clip = DataCollatorForMomentRetrieval(clip_length=1.0)([charades_row()])["labels"][0]
    by_duration = DataCollatorForMomentRetrieval(clip_length=1.0, pseudo_label_clip="duration")([charades_row()])
    torch.testing.assert_close(by_clip["saliency_all_labels"], torch.tensor([0.0, 1, 1, 1, 0, 0]))
    # duration / ctx_l = 12 / 6 = 2 s per clip: [1.5, 4.2] -> clips 0..1
    torch.testing.assert_close(by_duration["labels"][0]["saliency_all_labels"], torch.tensor([1.0, 1, 0, 0, 0, 0]))
    torch.testing.assert_close(by_clip["spans"], torch.tensor([[(1.5 + 4.2) / 12, 2.7 / 6]]))
    assert set(by_clip["saliency_pos_labels"].tolist()) <= {1, 2, 3}
    assert set(by_clip["saliency_neg_labels"].tolist()) <= {0, 4, 5}


def test_torch_rows_give_the_same_batch_as_numpy_rows():
    two_windows = dict(windows=((0.0, 2.0), (4.0, 8.0)), clip_ids=(0, 2, 3), scores=((1, 2, 3),) * 3)
    rows = [qvh_row(1), qvh_row(2, clips=4, **two_windows)]
    as_torch = [
        {k: (torch.tensor(v) if k not in ("query", "vid") else v) for k, v in row.items()} for row in rows
    ]  # every column a tensor, as with_format("torch") gives
    collator = DataCollatorForMomentRetrieval(clip_length=2.0, seed=5)
    a, b = collator(rows), collator(as_torch)
    for key in ("video_features", "video_mask", "text_features", "text_mask"):
        assert a[key].equal(b[key])
    assert a["meta"] == b["meta"]
    for la, lb in zip(a["labels"], b["labels"]):
        assert all(la[k].equal(lb[k]) for k in la)


def test_max_windows_and_deterministic_evaluation_labels():
    windows = tuple((2.0 * i, 2.0 * i + 2) for i in range(8))
    row = qvh_row(clips=20, windows=windows, clip_ids=range(8), scores=((2, 2, 2),) * 8)
    other = qvh_row(2, clips=20)
    collator = DataCollatorForMomentRetrieval(clip_length=2.0, seed=1)
    first = collator([row, other])["labels"][0]
    assert first["spans"].shape == (5, 2)
    # Same labels on every call and whatever was collated before (seeded by the batch content).
    collator([other])
    again = DataCollatorForMomentRetrieval(clip_length=2.0, seed=1)([row, other])["labels"][0]
    assert all(first[k].equal(again[k]) for k in first)
    assert all(first[k].equal(collator([row, other])["labels"][0][k]) for k in first)
    unlimited = DataCollatorForMomentRetrieval(clip_length=2.0, max_windows=8)([row])["labels"][0]
    assert unlimited["spans"].shape == (8, 2)


def test_evaluation_never_synthesizes_and_cuts_text():
    rows = [qvh_row(q, clips=4 + q, tokens=6) for q in range(4)]
    batch = DataCollatorForMomentRetrieval(training=False, max_query_length=4, synthesis_pairing="random")(rows)
    assert batch["video_features"].shape[0] == 4 and not any(m["synthetic"] for m in batch["meta"])
    assert batch["text_features"].shape[1] == 4


def test_rows_without_windows_have_no_labels_and_mixed_batches_fail():
    bare = qvh_row(3, windows=(), clip_ids=(), scores=())
    batch = DataCollatorForMomentRetrieval()([bare, qvh_row(4, windows=(), clip_ids=(), scores=())])
    assert "labels" not in batch and batch["meta"][0]["relevant_windows"] == []
    # Training without GT cannot synthesize either: the rows pass through.
    assert DataCollatorForMomentRetrieval(training=True)([bare, qvh_row(4, windows=(), clip_ids=(), scores=())])[
        "video_features"
    ].shape[0] == 2
    with pytest.raises(TDDetrInputError, match="qids \\[3\\]"):
        DataCollatorForMomentRetrieval()([bare, qvh_row(5)])


def test_from_config_reads_fields_by_name():
    config = SimpleNamespace(
        clip_length=1.0, max_video_length=None, max_query_length=16, max_windows=3, synthesis_pairing="random",
        synthesis_alpha=0.5, synthesis_length_jitter=0.1, synthesis_sampling="fixed_count",
        synthesis_keep_originals=False, synthesis_similarity="mean", hidden_size=256,
    )
    train = DataCollatorForMomentRetrieval.from_config(config, training=True, seed=9)
    assert (train.clip_length, train.max_windows, train.synthesis_alpha, train.seed) == (1.0, 3, 0.5, 9)
    assert train.synthesizer.sampling == "fixed_count" and train.synthesizer.max_length is None
    assert not train.synthesizer.keep_originals
    evaluation = DataCollatorForMomentRetrieval.from_config(config, training=False)
    assert evaluation.synthesizer is None
    assert DataCollatorForMomentRetrieval.from_config(SimpleNamespace(), training=False).clip_length == 2.0


def test_from_config_with_the_real_config_class():
    from td_detr import TDDetrConfig

    config = TDDetrConfig(clip_length=1.0, max_video_length=None)
    collator = DataCollatorForMomentRetrieval.from_config(config, training=True)
    assert collator.synthesizer.pairing == config.synthesis_pairing and collator.clip_length == 1.0


def test_bad_rows_name_the_qid_and_field():
    row = qvh_row(11)
    del row["video_features"]
    with pytest.raises(TDDetrInputError, match="qid 11.*video_features"):
        DataCollatorForMomentRetrieval()([row])
    wide = qvh_row(12)
    wide["video_features"] = np.ones((3, 5), dtype=np.float32)
    with pytest.raises(TDDetrInputError, match="video_features widths differ"):
        DataCollatorForMomentRetrieval()([qvh_row(13), wide])
    reversed_window = qvh_row(14, windows=((6.0, 2.0),))
    with pytest.raises(TDDetrInputError, match="qid 14.*start < end"):
        DataCollatorForMomentRetrieval()([reversed_window])
    with pytest.raises(TDDetrInputError, match="pseudo_label_clip"):
        DataCollatorForMomentRetrieval(pseudo_label_clip="frames")
    with pytest.raises(TDDetrInputError, match="empty batch"):
        DataCollatorForMomentRetrieval()([])


def test_works_as_a_dataloader_collate_fn_with_workers():
    rows = [qvh_row(q, clips=6, windows=((2.0, 6.0),), clip_ids=(1, 2)) for q in range(8)]
    collator = DataCollatorForMomentRetrieval(training=True, clip_length=2.0, seed=0)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(rows, batch_size=4, collate_fn=collator, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and all(b["video_features"].shape[0] == 8 for b in batches)  # 2·B synthesized


@pytest.mark.parametrize("change, message", [
    (dict(video_features=np.array([[1.0, np.nan, 0, 0]] * 3, dtype=np.float32)), "video_features contain NaN or inf"),
    (dict(text_features=np.array([[np.inf, 0, 0]] * 2, dtype=np.float32)), "text_features contain NaN or inf"),
    (dict(duration=float("nan")), "duration must be a positive number"),
    (dict(duration=0.0), "duration must be a positive number"),
    (dict(relevant_windows=[[2.0, 8.0]]), r"relevant_windows \[\[2.0, 8.0\]\] lie outside the video \[0, 6.0\]"),
    (dict(relevant_windows=[[-1.0, 2.0]]), "lie outside the video"),
    (dict(relevant_windows=[[0.0, float("nan")]]), "start, end"),
])
def test_rows_with_non_finite_values_or_windows_past_the_duration_are_refused(change, message):
    row = {**qvh_row(qid=5, clips=3), **change}
    for training in (False, True):
        with pytest.raises(TDDetrInputError, match=f"qid 5: .*{message}"):
            DataCollatorForMomentRetrieval(clip_length=2.0, training=training)([row, qvh_row(qid=6, clips=3)])
