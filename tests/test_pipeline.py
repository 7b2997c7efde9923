"""The "moment-retrieval" pipeline (td_detr.pipeline), sliding windows, and the video CLI options, end to end on a
generated video, a tiny random CLIP and a tiny TD-DETR."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

pytest.importorskip("av")

from model_utils import tiny_config  # noqa: E402
from td_detr import TDDetrForMomentRetrieval  # noqa: E402
from td_detr.commands.video_options import (  # noqa: E402
    add_plot_argument,
    add_video_arguments,
    plot_evaluated_query,
    run_video_predict,
)
from td_detr.errors import TDDetrInputError  # noqa: E402
from td_detr.features import CLIPFeatureEncoder  # noqa: E402
from td_detr.pipeline import TASK, MomentRetrievalPipeline, moment_retrieval_pipeline  # noqa: E402
from td_detr.processing_td_detr import l2_normalize_rows  # noqa: E402
from td_detr.processing_td_detr import (  # noqa: E402
    TDDetrProcessor,
    merge_window_predictions,
    sliding_window_starts,
    temporal_nms,
)
from td_detr.postprocessing import widen_short_windows  # noqa: E402
from td_detr.span_utils import temporal_iou  # noqa: E402
from video_utils import PROJECTION_DIM, TEXT_HIDDEN_SIZE, save_tiny_clip, write_test_video  # noqa: E402

MAX_CLIPS = 8


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("video") / "clip.mp4", seconds=7, fps=4)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = tiny_config(video_feature_size=PROJECTION_DIM, text_feature_size=TEXT_HIDDEN_SIZE,
                         max_video_length=MAX_CLIPS, clip_length=2.0)
    return TDDetrForMomentRetrieval(config).eval()


@pytest.fixture(scope="module")
def pipe(model, clip_dir):
    return moment_retrieval_pipeline(model, clip_model=str(clip_dir), device="cpu")


def _direct(model, video: np.ndarray, text: np.ndarray, duration: float) -> dict:
    """One forward pass and the model's own post-processing: what a single-window prediction must equal."""
    with torch.no_grad():
        outputs = model(video_features=torch.from_numpy(video)[None], video_mask=torch.ones(1, len(video)),
                        text_features=torch.from_numpy(text)[None], text_mask=torch.ones(1, len(text)))
    return model.post_process(outputs, [duration])[0]


def _assert_same(result, expected, tolerance=1e-5):
    assert result.keys() == expected.keys() and len(result["windows"]) == len(expected["windows"])
    for key in ("start", "end", "score"):
        assert [w[key] for w in result["windows"]] == pytest.approx([w[key] for w in expected["windows"]],
                                                                     abs=tolerance)
    assert result["saliency"] == pytest.approx(expected["saliency"], abs=tolerance)
    assert (result["clip_length"], result["duration"]) == (expected["clip_length"], expected["duration"])


def test_task_is_registered_and_the_factory_builds_the_pipeline(pipe, model, tmp_path, clip_dir):
    from transformers import pipeline
    from transformers.pipelines import PIPELINE_REGISTRY

    assert TASK in PIPELINE_REGISTRY.get_supported_tasks()
    assert isinstance(pipe, MomentRetrievalPipeline) and pipe.model is model and not model.training
    model.save_pretrained(tmp_path / "td")
    from_folder = pipeline(TASK, model=str(tmp_path / "td"), clip_model=str(clip_dir), device="cpu")
    assert isinstance(from_folder.model, TDDetrForMomentRetrieval)
    features = np.random.default_rng(0).normal(size=(5, PROJECTION_DIM)).astype(np.float32)
    text = np.random.default_rng(1).normal(size=(4, TEXT_HIDDEN_SIZE)).astype(np.float32)
    _assert_same(from_folder(features, text), pipe(features, text))


def test_from_a_video_file(pipe, model, video_path):
    result = pipe(video_path, "a gray frame gets brighter")
    assert result["clip_length"] == 2.0 and result["duration"] == pytest.approx(7.0)
    assert len(result["saliency"]) == 4  # ceil(7 s / 2 s)
    windows = result["windows"]
    assert len(windows) == model.config.num_queries  # one pass, no NMS: every moment query
    scores = [w["score"] for w in windows]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= w["start"] <= w["end"] <= 7.0 for w in windows)
    assert len(pipe(str(video_path), "a gray frame", top_k=3)["windows"]) == 3


def test_a_video_file_equals_its_features(pipe, model, video_path, clip_dir):
    encoder = CLIPFeatureEncoder.from_pretrained(str(clip_dir))
    video = encoder.encode_video(video_path, 2.0)
    text = encoder.encode_text("a gray frame gets brighter")
    from_file = pipe(video_path, "a gray frame gets brighter")
    from_features = pipe(video.features, text, duration=video.duration)
    assert from_features["saliency"] == pytest.approx(from_file["saliency"], abs=1e-5)
    assert [w["score"] for w in from_features["windows"]] == pytest.approx(
        [w["score"] for w in from_file["windows"]], abs=1e-4)

    # one window: the model's own post-processing on L2-normalised inputs, de-normalised by clips × clip length (8 s)
    # and clamped to the real 7 s
    direct = _direct(model, l2_normalize_rows(video.features), l2_normalize_rows(text), duration=8.0)
    expected = np.minimum(np.array(direct["pred_relevant_windows"])[:, :2], 7.0)
    # ... each window still at least one clip long once inside the 7 s (a window cut to [6, 7] grows to [5, 7])
    expected = widen_short_windows(torch.from_numpy(expected), 7.0, model.config.clip_length).numpy()
    got = np.array([[w["start"], w["end"]] for w in from_features["windows"]])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_features_and_token_features_in_one_window_equal_the_model(pipe, model):
    rng = np.random.default_rng(0)
    video = rng.normal(size=(6, PROJECTION_DIM)).astype(np.float32) * 3
    text = rng.normal(size=(MAX_CLIPS + 4, TEXT_HIDDEN_SIZE)).astype(np.float32)
    result = pipe(video, text)
    direct = _direct(model, l2_normalize_rows(video), l2_normalize_rows(text[: model.config.max_query_length]), 12.0)
    assert result["duration"] == 12.0
    assert [[w["start"], w["end"], w["score"]] for w in result["windows"]] == direct["pred_relevant_windows"]
    assert result["saliency"] == pytest.approx(direct["pred_saliency_scores"], abs=1e-6)
    # a torch tensor and a list of one type are the same input
    assert pipe(torch.from_numpy(video), text) == result
    assert pipe([video], text) == result
    assert pipe({"video": video, "query": text}) == result
    assert pipe([{"video": video, "query": text}] * 2) == [result, result]


def test_per_type_features_are_normalised_per_type_and_cut_to_the_shortest():
    rng = np.random.default_rng(0)
    slow, clip = rng.normal(size=(9, 5)) * 4, rng.normal(size=(7, 3))
    prepared = TDDetrProcessor().prepare_video([slow, clip])
    assert prepared.shape == (7, 8) and prepared.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(prepared[:, :5], axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(prepared[:, 5:], axis=1), 1, atol=1e-4)
    with pytest.raises(TDDetrInputError, match="2-D"):
        TDDetrProcessor().prepare_video(np.zeros(5))
    with pytest.raises(TDDetrInputError, match="NaN"):
        TDDetrProcessor().prepare_video(np.full((3, 2), np.nan))


@pytest.mark.parametrize(
    ("clips", "window", "stride", "expected"),
    [(21, 8, None, [0, 4, 8, 12, 13]), (8, 8, None, [0]), (5, 8, None, [0]), (16, 8, None, [0, 4, 8]),
     (16, 8, 8, [0, 8]), (17, 8, 8, [0, 8, 9]), (500, None, None, [0])],
)
def test_sliding_windows_cover_every_clip(clips, window, stride, expected):
    starts = sliding_window_starts(clips, window, stride)
    assert starts.tolist() == expected
    covered = np.zeros(clips, bool)
    for start in starts:
        covered[start: start + (window or clips)] = True
    assert covered.all() and starts[-1] + min(window or clips, clips) == clips


def test_long_inputs_are_predicted_with_sliding_windows(pipe, model):
    rng = np.random.default_rng(3)
    clips, duration = 21, 41.0  # 21 clips of 2 s, the last one partial
    video = rng.normal(size=(clips, PROJECTION_DIM)).astype(np.float32)
    text = rng.normal(size=(5, TEXT_HIDDEN_SIZE)).astype(np.float32)
    prepared_video, prepared_text = l2_normalize_rows(video), l2_normalize_rows(text)

    # reference: each window on its own, shifted by hand; saliency averaged over the windows holding each clip
    starts = [0, 4, 8, 12, 13]
    pooled, saliency_sum, saliency_count = [], np.zeros(clips), np.zeros(clips)
    for start in starts:
        record = _direct(model, prepared_video[start: start + MAX_CLIPS], prepared_text, MAX_CLIPS * 2.0)
        for window_start, window_end, score in record["pred_relevant_windows"]:
            pooled.append([min(window_start + 2 * start, duration), min(window_end + 2 * start, duration), score])
        saliency_sum[start: start + MAX_CLIPS] += record["pred_saliency_scores"]
        saliency_count[start: start + MAX_CLIPS] += 1
    pooled = np.array(pooled)

    everything = pipe(video, text, duration=duration, nms_threshold=None)
    assert len(everything["saliency"]) == clips
    np.testing.assert_allclose(everything["saliency"], saliency_sum / saliency_count, atol=1e-5)
    got = np.array([[w["start"], w["end"], w["score"]] for w in everything["windows"]])
    assert len(got) == len(starts) * model.config.num_queries
    np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], pooled[np.lexsort(pooled.T[::-1])], atol=1e-4)
    assert (np.diff(got[:, 2]) <= 0).all()
    assert got[:, 0].min() >= 0 and got[:, 1].max() <= duration and got[:, 1].max() > MAX_CLIPS * 2.0

    ranked = pipe(video, text, duration=duration)  # NMS at IoU 0.7 across the pooled windows
    kept = np.array([[w["start"], w["end"], w["score"]] for w in ranked["windows"]])
    assert 0 < len(kept) <= len(got) and kept[0].tolist() == got[0].tolist()
    iou = temporal_iou(torch.from_numpy(kept[:, :2]), torch.from_numpy(kept[:, :2]))[0].numpy()
    assert (iou[~np.eye(len(kept), dtype=bool)] < 0.7).all()
    assert ranked["saliency"] == everything["saliency"]


def test_temporal_nms_and_merging():
    windows = np.array([[0, 10, 0.9], [1, 10, 0.8], [20, 30, 0.7], [0, 9, 0.95], [2, 4, 0.1]])
    kept = temporal_nms(windows, 0.7)
    assert kept.tolist() == [[0, 9, 0.95], [20, 30, 0.7], [2, 4, 0.1]]  # IoU with [0, 9]: 0.9 and 0.8 → dropped
    assert len(temporal_nms(windows, 1.01)) == 5

    records = [{"pred_relevant_windows": [[0, 4, 0.5]], "pred_saliency_scores": [1.0, 2.0]},
               {"pred_relevant_windows": [[2, 4, 0.9]], "pred_saliency_scores": [3.0, 5.0]}]
    merged, saliency = merge_window_predictions(records, np.array([0, 1]), clip_length=2.0, num_clips=3, duration=5.0)
    assert merged.tolist() == [[4.0, 5.0, 0.9], [0.0, 4.0, 0.5]]  # the second window starts at 2 s; clamped to 5 s
    assert saliency.tolist() == [1.0, 2.5, 5.0]


def test_bad_inputs_raise_clear_errors(pipe):
    rng = np.random.default_rng(0)
    text = rng.normal(size=(3, TEXT_HIDDEN_SIZE))
    with pytest.raises(TDDetrInputError, match=f"7-d video features.*takes {PROJECTION_DIM}-d"):
        pipe(rng.normal(size=(4, 7)), text)
    with pytest.raises(TDDetrInputError, match=f"text features are 3-d but the model takes {TEXT_HIDDEN_SIZE}-d"):
        pipe(rng.normal(size=(4, PROJECTION_DIM)), rng.normal(size=(2, 3)))
    with pytest.raises(TDDetrInputError, match="give a query"):
        pipe(rng.normal(size=(4, PROJECTION_DIM)))
    with pytest.raises(TDDetrInputError, match="not found"):
        pipe("no_such_video.mp4", text)


def _cli_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    add_video_arguments(parser)
    add_plot_argument(parser)
    return parser


def test_a_video_file_needs_a_model_trained_on_the_clip_features_alone(clip_dir, video_path):
    wide = TDDetrForMomentRetrieval(tiny_config(video_feature_size=PROJECTION_DIM + 4,
                                                text_feature_size=TEXT_HIDDEN_SIZE))
    pipe = moment_retrieval_pipeline(wide, clip_model=str(clip_dir), device="cpu")
    with pytest.raises(TDDetrInputError, match=f"gives {PROJECTION_DIM}-d features.*td-detr-qvh-clip"):
        pipe(video_path, "a dog")


def test_cli_predicts_a_video_file_and_plots(model, video_path, clip_dir, tmp_path, capsys):
    from PIL import Image

    model.save_pretrained(tmp_path / "td")
    plot = tmp_path / "plots" / "answer.png"
    args = _cli_parser().parse_args(["--model", str(tmp_path / "td"), "--video", str(video_path), "--query",
                                     "a dog", "--clip-model", str(clip_dir), "--json", "--plot", str(plot)])
    assert run_video_predict(args) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)  # stdout is exactly the JSON record; the plot's path goes to stderr
    assert str(plot) in captured.err
    assert record["query"] == "a dog" and len(record["pred_saliency_scores"]) == 4
    assert len(record["pred_relevant_windows"]) == model.config.num_queries
    assert Image.open(plot).format == "PNG"

    args = _cli_parser().parse_args(["--model", str(tmp_path / "td"), "--video", str(video_path), "--query",
                                     "a dog", "--clip-model", str(clip_dir), "--top-k", "2"])
    assert run_video_predict(args) == 0
    table = capsys.readouterr().out
    assert "4 clips of 2 s (7 s); top 2 windows" in table and table.count("\n") == 6
    with pytest.raises(TDDetrInputError, match="--video needs --query"):
        run_video_predict(_cli_parser().parse_args(["--model", "m", "--video", str(video_path)]))


def test_evaluate_plot_of_one_query(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_plot_argument(parser, with_qid=True)
    records = [{"qid": 3, "query": "q3", "pred_relevant_windows": [[0, 4, 0.9]], "pred_saliency_scores": [0.1, 0.2]},
               {"qid": 7, "query": "q7", "pred_relevant_windows": [[2, 4, 0.8]], "pred_saliency_scores": [0.3, 0.1]}]
    truth = [{"qid": 3, "duration": 4, "relevant_windows": [[0, 2]]},
             {"qid": 7, "duration": 4, "relevant_windows": [[2, 4]]}]
    assert plot_evaluated_query(parser.parse_args([]), records, truth, 2.0) is None
    path = plot_evaluated_query(parser.parse_args(["--plot", str(tmp_path / "q7.png"), "--plot-qid", "7"]),
                                records, truth, 2.0)
    assert path.is_file() and "q7.png" in capsys.readouterr().err
    with pytest.raises(TDDetrInputError, match="--plot-qid 5: no such qid"):
        plot_evaluated_query(parser.parse_args(["--plot", str(tmp_path / "x.png"), "--plot-qid", "5"]),
                             records, truth, 2.0)
