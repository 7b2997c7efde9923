"""Videos longer than the model's maximum (issue 12 §1): a moment planted at 300-320 s of a 400-s video is found by
`td-detr evaluate` (through a data folder and through --eval-file), `td-detr spurious-eval` and `td-detr predict`; the model never sees more
than `max_video_length` clips in one row; no window lies outside [0, duration]; `--long-videos refuse` and a
non-positive `--duration` exit 2.

The features make the moment unambiguous: the first feature type of every clip is orthogonal to a fixed signature
except inside the moment, where it is the signature. The saved model is a tiny TD-DETR whose forward is replaced by an
oracle that reports exactly the clips carrying the signature (one confident span in the row's own [0, 1] frame, four
unconfident ones), i.e. a perfectly trained model. What is tested is the data path around the model: the processor's
windows, their shift to absolute time, pooling, NMS, clamping, and the clip span used to de-normalise.
"""

import json

import numpy as np
import pytest
import torch

from td_detr import TDDetrForMomentRetrieval
from td_detr.cli import main
from td_detr.data.layout import write_annotations, write_text_features, write_video_features
from td_detr.modeling_td_detr import TDDetrMomentRetrievalOutput
from td_detr.processing_td_detr import TDDetrProcessor
from td_detr.span_utils import temporal_iou

from model_utils import tiny_config

CLIP, MAX_CLIPS, DIMS, TEXT_DIM = 2.0, 75, (8, 4), 6
LONG_CLIPS, MOMENT = 200, (150, 160)  # 400 s; the moment is 300-320 s
TYPES = ("slowfast_features", "clip_features")
SIGNATURE = np.eye(DIMS[0], dtype=np.float32)[0]


def _video(rng, clips, moment):
    """Raw per-type arrays: type 1 orthogonal to the signature outside the moment and equal to it inside."""
    types = [rng.normal(size=(clips, dim)).astype(np.float32) for dim in DIMS]
    types[0][:, 0] = 0.0
    types[0][moment[0]:moment[1]] = 3.0 * SIGNATURE
    return types


def _oracle_forward(self, video_features, video_mask, text_features, text_mask, **kwargs):
    """Query 0: the span of the clips carrying the signature (confident when there are any); queries 1-4: fixed
    unconfident spans. Spans are in the row's own frame (its valid clips), as a trained model's are."""
    rows, length, _ = video_features.shape
    match = (video_features[..., 0] > 0.9) & video_mask.bool()  # the processor L2-normalised type 1
    valid = video_mask.sum(dim=1)
    logits = torch.tensor([[-3.0, 3.0]]).repeat(rows, 5, 1)
    spans = torch.tensor([[0.1 + 0.2 * q, 0.1] for q in range(5)]).repeat(rows, 1, 1)
    for row in range(rows):
        clips = torch.nonzero(match[row]).flatten()
        if len(clips):
            first, last = clips.min().item(), clips.max().item() + 1
            spans[row, 0] = torch.tensor([(first + last) / 2, last - first]) / valid[row]
            logits[row, 0] = torch.tensor([3.0, -3.0])
    return TDDetrMomentRetrievalOutput(logits=logits, pred_spans=spans, saliency_scores=match.float(),
                                       video_mask=video_mask.float())


@pytest.fixture(scope="module")
def long_video_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    config = tiny_config(video_feature_size=sum(DIMS), text_feature_size=TEXT_DIM, num_queries=5,
                         clip_length=CLIP, max_video_length=MAX_CLIPS)
    model_dir = root / "model"
    TDDetrForMomentRetrieval(config).save_pretrained(model_dir)
    TDDetrProcessor.from_model_config(config, video_feature_types=TYPES, video_feature_dims=DIMS).save_pretrained(
        model_dir)

    # evaluation data: the 400-s video (qid 1) and a 100-s one that fits (qid 2, moment at 40-60 s)
    data = root / "data"
    records = [
        {"qid": 1, "query": "the signature", "vid": "long", "duration": 400.0, "relevant_windows": [[300.0, 320.0]]},
        {"qid": 2, "query": "the signature", "vid": "short", "duration": 100.0, "relevant_windows": [[40.0, 60.0]]},
    ]
    for record, clips, moment in ((records[0], LONG_CLIPS, MOMENT), (records[1], 50, (20, 30))):
        for folder, array in zip(TYPES, _video(rng, clips, moment)):
            write_video_features(data / folder, record["vid"], array)
        write_text_features(data / "clip_text_features", record["qid"], rng.normal(size=(3, TEXT_DIM)))
    write_annotations(data / "validation.jsonl", records)
    info = {"splits": {"validation": "validation.jsonl"}, "clip_length": CLIP, "video_feature_dirs": list(TYPES),
            "text_feature_dir": "clip_text_features", "max_video_length": MAX_CLIPS}
    (data / "dataset_info.json").write_text(json.dumps(info))
    return model_dir, data, root


@pytest.fixture
def clips_seen(monkeypatch):
    """The oracle model; records the length (in clips) of every row it is given."""
    seen = []

    def recording_forward(self, video_features, *args, **kwargs):
        seen.append(video_features.shape[1])
        return _oracle_forward(self, video_features, *args, **kwargs)

    monkeypatch.setattr(TDDetrForMomentRetrieval, "forward", recording_forward)
    return seen


def _top1_iou(windows, truth):
    return temporal_iou(torch.tensor([windows[0][:2]]), torch.tensor([truth]))[0].item()


def _check_predictions(path):
    records = {r["qid"]: r for r in map(json.loads, path.read_text().splitlines())}
    for qid, duration, truth, clips in ((1, 400.0, [300.0, 320.0], LONG_CLIPS), (2, 100.0, [40.0, 60.0], 50)):
        windows = records[qid]["pred_relevant_windows"]
        assert _top1_iou(windows, truth) >= 0.5, (qid, windows[:3])
        assert all(0 <= start < end <= duration for start, end, _ in windows), windows
        assert len(records[qid]["pred_saliency_scores"]) == clips
    saliency = np.array(records[1]["pred_saliency_scores"])
    assert MOMENT[0] <= saliency.argmax() < MOMENT[1]


def test_evaluate_finds_a_moment_late_in_a_long_video_through_a_data_folder(long_video_setup, clips_seen, tmp_path):
    model_dir, data, root = long_video_setup
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(model_dir), "--data-dir", str(data), "--output-dir", str(out),
                 "--cache-dir", str(root / "cache")]) == 0
    assert clips_seen and max(clips_seen) <= MAX_CLIPS
    _check_predictions(out / "predictions.jsonl")
    assert json.loads((out / "metrics.json").read_text())["brief"]["MR-full-R1@0.5"] == 100.0


def test_evaluate_finds_it_through_an_eval_file_without_repeating_the_clip_length(long_video_setup, clips_seen,
                                                                                  tmp_path):
    model_dir, data, root = long_video_setup
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(model_dir), "--eval-file", str(data / "validation.jsonl"),
                 "--video-feature-dir", str(data / TYPES[0]), "--video-feature-dir", str(data / TYPES[1]),
                 "--text-feature-dir", str(data / "clip_text_features"), "--output-dir", str(out),
                 "--cache-dir", str(root / "cache")]) == 0
    assert clips_seen and max(clips_seen) <= MAX_CLIPS
    _check_predictions(out / "predictions.jsonl")


def test_spurious_eval_windows_long_videos(long_video_setup, clips_seen, tmp_path):
    model_dir, data, root = long_video_setup
    out = tmp_path / "spurious"
    assert main(["spurious-eval", "--model", str(model_dir), "--data-dir", str(data), "--output-dir", str(out),
                 "--cache-dir", str(root / "cache")]) == 0
    assert clips_seen and max(clips_seen) <= MAX_CLIPS
    report = json.loads((out / "spurious_metrics.json").read_text())
    assert report["standard"]["MR-full-R1@0.5"] == 100.0  # the untouched split: both moments found
    assert report["masked"]["Spurious-R1@0.5"] == 0.0  # erased moments: nothing left for the oracle to find


def test_predict_finds_it_and_keeps_windows_inside_the_duration(long_video_setup, clips_seen, capsys):
    model_dir, data, _ = long_video_setup
    video = [str(data / folder / "long.npz") for folder in TYPES]
    command = ["predict", "--model", str(model_dir), "--video-features", *video,
               "--text-features", str(data / "clip_text_features" / "qid1.npz"), "--json"]
    assert main(command + ["--duration", "400"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert max(clips_seen) <= MAX_CLIPS and len(record["pred_saliency_scores"]) == LONG_CLIPS
    assert _top1_iou(record["pred_relevant_windows"], [300.0, 320.0]) >= 0.5
    assert all(0 <= start < end <= 400 for start, end, _ in record["pred_relevant_windows"])
    # a duration longer than the features does not stretch the windows; a shorter one clamps them
    assert main(command + ["--duration", "1000"]) == 0
    assert json.loads(capsys.readouterr().out) == record
    assert main(command + ["--duration", "350"]) == 0
    assert all(0 <= start <= end <= 350 for start, end, _ in json.loads(capsys.readouterr().out)["pred_relevant_windows"])


def test_long_videos_refuse_exits_2_with_one_line(long_video_setup, clips_seen, tmp_path, capsys):
    model_dir, data, root = long_video_setup
    assert main(["evaluate", "--model", str(model_dir), "--data-dir", str(data), "--output-dir", str(tmp_path / "e"),
                 "--cache-dir", str(root / "cache"), "--long-videos", "refuse"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "qid 1" in error and "200 clips (400 s), more than the model's 75 (150 s)" in error
    video = [str(data / folder / "long.npz") for folder in TYPES]
    assert main(["predict", "--model", str(model_dir), "--video-features", *video, "--text-features",
                 str(data / "clip_text_features" / "qid1.npz"), "--long-videos", "refuse"]) == 2
    assert "more than the model's 75" in capsys.readouterr().err
