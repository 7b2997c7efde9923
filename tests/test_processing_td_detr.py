"""TDDetrProcessor: saved and loaded with the model, per-type width checks, windows for long videos, and the one
post-processing convention (windows in seconds of the clips the model was given)."""

import numpy as np
import pytest
import torch

from td_detr import TDDetrForMomentRetrieval
from td_detr.data.collator import DataCollatorForMomentRetrieval
from td_detr.errors import TDDetrInputError
from td_detr.processing_td_detr import TDDetrProcessor, load_processor

from model_utils import tiny_config


def test_save_and_load_round_trip_and_fallback_to_the_config(tmp_path):
    config = tiny_config(clip_length=1.5, max_video_length=9)
    processor = TDDetrProcessor.from_model_config(config, video_feature_types=["a", "b"], video_feature_dims=[8, 4],
                                                  long_video="refuse")
    processor.save_pretrained(tmp_path)
    loaded = TDDetrProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert (loaded.clip_length, loaded.max_video_length, loaded.video_feature_dims) == (1.5, 9, [8, 4])
    assert load_processor(tmp_path, config).to_dict() == processor.to_dict()
    # a model folder without preprocessor_config.json: made from the config, one video type of the config's width
    TDDetrForMomentRetrieval(config).save_pretrained(tmp_path / "bare")
    bare = load_processor(tmp_path / "bare", config, long_video="refuse")
    assert (bare.clip_length, bare.video_feature_size, bare.video_feature_dims, bare.long_video) == (1.5, 12, None,
                                                                                                    "refuse")
    with pytest.raises(TDDetrInputError, match="clip length is 1.5 s, but the model config's is 2 s"):
        load_processor(tmp_path, tiny_config(clip_length=2.0))
    with pytest.raises(TDDetrInputError, match=r"\[9, 4\] do not add up to video_feature_size 12"):
        TDDetrProcessor.from_model_config(config, video_feature_dims=[9, 4])


def test_each_feature_type_is_checked_in_order():
    processor = TDDetrProcessor(video_feature_types=["slowfast", "clip"], video_feature_dims=[6, 3], text_feature_dim=5)
    rng = np.random.default_rng(0)
    slow, clip, text = rng.normal(size=(7, 6)), rng.normal(size=(6, 3)), rng.normal(size=(4, 5))
    assert processor.prepare_video([slow, clip]).shape == (6, 9)
    with pytest.raises(TDDetrInputError, match=r"type 1 \(slowfast\) is 3-d but the model was trained on 6-d.*"
                                               r"in order: slowfast, clip"):
        processor.prepare_video([clip, slow])
    with pytest.raises(TDDetrInputError, match="1 video feature types but the model takes 2"):
        processor.prepare_video(np.concatenate([slow[:6], clip], axis=1))
    with pytest.raises(TDDetrInputError, match="text features are 4-d"):
        processor.prepare_text(text[:, :4])
    with pytest.raises(TDDetrInputError, match="long_video must be one of"):
        TDDetrProcessor(long_video="cut")


def test_call_windows_long_videos_and_post_processing_pools_them():
    processor = TDDetrProcessor(max_video_length=4, clip_length=2.0, max_query_length=3)
    rng = np.random.default_rng(1)
    videos, texts = [rng.normal(size=(10, 5)), rng.normal(size=(3, 5))], [rng.normal(size=(5, 2))] * 2
    inputs = processor(videos, texts)
    assert inputs["window_starts"] == [[0, 2, 4, 6], [0]]
    assert tuple(inputs["video_features"].shape) == (5, 4, 5) and inputs["video_mask"].sum(1).tolist() == [4] * 4 + [3]
    assert tuple(inputs["text_features"].shape) == (5, 3, 2)  # cut to max_query_length
    np.testing.assert_allclose(inputs["video_features"][2].numpy(), processor.prepare_video(videos[0])[4:8], atol=1e-6)

    # rows predicting their clip span [0.25, 0.75] (one query): each row's window shifted by its start, pooled, NMS
    rows = 5
    outputs = type("Outputs", (), dict(
        logits=torch.tensor([[[2.0, 0.0]]] * rows) + torch.arange(rows).view(rows, 1, 1) * torch.tensor([0.1, 0.0]),
        pred_spans=torch.tensor([[[0.5, 0.5]]] * rows), saliency_scores=torch.arange(rows * 4.0).view(rows, 4),
        video_mask=inputs["video_mask"]))
    long, short = processor.post_process_moment_retrieval(outputs, [19.0, None], inputs["window_starts"],
                                                          nms_threshold=None)
    starts = sorted(window[0] for window in long["pred_relevant_windows"])
    assert starts == [2.0, 6.0, 10.0, 14.0]  # each row's 2-6 s shifted by 4 s per start clip
    assert all(0 <= w[0] < w[1] <= 19.0 for w in long["pred_relevant_windows"])
    saliency = torch.arange(16.0).view(4, 4)  # clip c: mean over the rows holding it
    assert long["pred_saliency_scores"][:2] == saliency[0, :2].tolist()
    assert long["pred_saliency_scores"][2] == pytest.approx((saliency[0, 2] + saliency[1, 0]).item() / 2)
    assert len(long["pred_saliency_scores"]) == 10
    # the short video: one row of 3 clips = 6 s, so the span is (1.5, 4.5) s, rounded to the 2-s grid
    assert short["pred_relevant_windows"][0][:2] == [2.0, 4.0] and len(short["pred_saliency_scores"]) == 3

    refuse = TDDetrProcessor(max_video_length=4, long_video="refuse")
    with pytest.raises(TDDetrInputError, match="10 clips .20 s., more than the model's 4 .8 s."):
        refuse(videos, texts)


def test_evaluation_collator_windows_long_rows_and_training_keeps_them():
    rng = np.random.default_rng(2)
    rows = [dict(qid=q, vid=f"v{q}", duration=float(2 * n), video_features=rng.normal(size=(n, 5)).astype(np.float32),
                 text_features=rng.normal(size=(3, 2)).astype(np.float32), relevant_windows=[[0.0, 2.0]])
            for q, n in ((1, 9), (2, 3))]
    processor = TDDetrProcessor(max_video_length=4)
    batch = DataCollatorForMomentRetrieval(training=False, processor=processor)(rows)
    assert [m.get("window_starts") for m in batch["meta"]] == [[0, 2, 4, 5], [0]]
    assert tuple(batch["video_features"].shape) == (5, 4, 5) and "labels" not in batch
    np.testing.assert_array_equal(batch["video_features"][3].numpy(), rows[0]["video_features"][5:9])
    fitting = DataCollatorForMomentRetrieval(training=False, processor=TDDetrProcessor(max_video_length=9))(rows)
    assert tuple(fitting["video_features"].shape) == (2, 9, 5) and len(fitting["labels"]) == 2
    with pytest.raises(TDDetrInputError, match="qid 1: the video has 9 clips"):
        DataCollatorForMomentRetrieval(training=False, processor=TDDetrProcessor(max_video_length=4,
                                                                                 long_video="refuse"))(rows)


def test_official_decoding_scales_by_the_duration_only_when_asked():
    outputs = type("Outputs", (), dict(logits=torch.tensor([[[2.0, 0.0]]]), pred_spans=torch.tensor([[[0.5, 0.5]]]),
                                       saliency_scores=torch.zeros(1, 31), video_mask=torch.ones(1, 31)))
    kwargs = dict(clip_length=1.0, round_to_clip=False)
    clips = TDDetrProcessor(**kwargs).post_process_moment_retrieval(outputs, [30.96])[0]["pred_relevant_windows"]
    official = TDDetrProcessor(span_unit="duration", **kwargs).post_process_moment_retrieval(outputs, [30.96])[0]
    assert clips[0][:2] == [7.75, 23.25]  # (0.25, 0.75) × 31 clips of 1 s
    assert official["pred_relevant_windows"][0][:2] == [7.74, 23.22]  # × the 30.96-s duration, as the official code
