"""The vectorised metrics agree with the naive per-query reference on random submissions full of edge cases."""

import math

import numpy as np
import pytest

import brute_force_evaluator as naive
from td_detr.errors import TDDetrInputError
from td_detr.metrics import (
    binary_average_precision,
    detection_average_precision,
    evaluate_submission,
    pack_ground_truth,
    pack_submission,
    per_query_average_precision,
    top1_iou,
)


def random_window(rng, duration, grid):
    """A window on a 2-s grid (IoU ties, IoUs exactly at thresholds) or fractional; sometimes zero-length."""
    kind = rng.random()
    if grid:
        start = 2.0 * rng.integers(0, int(duration // 2))
        length = 0.0 if kind < 0.05 else 2.0 * rng.integers(1, max(2, min(40, int(duration // 2))))
    else:
        start = round(float(rng.uniform(0, duration)), 2)
        length = 0.0 if kind < 0.05 else round(float(rng.exponential(15)), 2)
    return [start, min(start + length, 150.0)]


def random_case(seed, num_queries=24):
    rng = np.random.default_rng(seed)
    submission, ground_truth = [], []
    for qid in range(num_queries):
        duration = float(rng.choice([150, 126, 31.5, 20, 20, 8]))
        grid = duration == 20 or rng.random() < 0.6  # short gridded videos: many IoU ties
        num_gt = int(rng.choice([1, 1, 2, 3, 7, 25]))  # many GT windows in some rows
        gt_windows = [random_window(rng, duration, grid) for _ in range(num_gt)]
        num_clips = int(duration / 2)
        clip_ids = sorted(rng.choice(num_clips, size=int(rng.integers(0, num_clips + 1)), replace=False).tolist())
        ground_truth.append({
            "qid": qid, "duration": duration, "relevant_windows": gt_windows, "relevant_clip_ids": clip_ids,
            "saliency_scores": rng.integers(0, 5, size=(len(clip_ids), 3)).tolist(),
        })
        num_pred = int(rng.choice([0, 1, 1, 3, 10, 15])) if qid else 1
        preds = [random_window(rng, duration, grid) for _ in range(num_pred)]
        if preds and rng.random() < 0.3:
            preds[0] = list(gt_windows[0])  # exact hits (two zero-length windows give IoU 0/0 = NaN)
        scores = rng.choice([0.1, 0.5, 0.9], size=num_pred) if rng.random() < 0.5 else rng.random(num_pred).round(4)
        windows = [[s, e, float(c)] for (s, e), c in zip(preds, scores)]  # unsorted on purpose
        saliency_length = max(1, num_clips + int(rng.integers(-4, 5)))  # longer or shorter than the video
        saliency = rng.normal(size=saliency_length).round(1)  # rounding makes ties
        if rng.random() < 0.2:
            saliency[:] = 0.5  # all tied
        submission.append({"qid": qid, "pred_relevant_windows": windows, "pred_saliency_scores": saliency.tolist()})
    return submission, ground_truth


def assert_metrics_close(expected, actual, path=""):
    """Same keys and values; a 0.01 slack only for a rounding flip caused by a different summation order."""
    assert set(expected) <= set(actual), f"{path}: missing {set(expected) - set(actual)}"
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_metrics_close(value, actual[key], f"{path}/{key}")
        else:
            assert actual[key] == pytest.approx(value, abs=0.0100001), f"{path}/{key}"


@pytest.mark.parametrize("seed", range(12))
def test_random_submissions_match_brute_force(seed):
    submission, ground_truth = random_case(seed)
    assert_metrics_close(naive.evaluate(submission, ground_truth), evaluate_submission(submission, ground_truth))


@pytest.mark.parametrize("seed", range(6))
def test_per_query_values_match_brute_force(seed):
    submission, ground_truth = random_case(100 + seed, num_queries=40)
    preds, truth = pack_submission(submission), pack_ground_truth(ground_truth)
    pairs = list(zip(submission, ground_truth))
    expected_iou = [naive.top1_iou(d["pred_relevant_windows"], g["relevant_windows"]) for d, g in pairs]
    iou = top1_iou(preds.windows, preds.num_windows, truth.windows, truth.num_windows)
    np.testing.assert_allclose(iou, expected_iou, atol=1e-12)

    has = preds.num_windows > 0
    ap = detection_average_precision(
        preds.windows[has], preds.num_windows[has], truth.windows[has], truth.num_windows[has]
    )
    expected_ap = [
        naive.detection_ap(d["pred_relevant_windows"], g["relevant_windows"]) for d, g in pairs if d["pred_relevant_windows"]
    ]
    np.testing.assert_allclose(ap, expected_ap, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_per_query_average_precision_averages_to_the_reported_map(seed):
    submission, ground_truth = random_case(200 + seed, num_queries=40)
    per_query = per_query_average_precision(submission, list(reversed(ground_truth)))  # GT order does not matter
    # Keyed by qid, only the queries mAP averages (those with windows), each the brute-force AP over thresholds.
    assert list(per_query) == [d["qid"] for d in submission if d["pred_relevant_windows"]]
    truth = {g["qid"]: g["relevant_windows"] for g in ground_truth}
    for d in submission:
        if d["pred_relevant_windows"]:
            expected = np.mean(naive.detection_ap(d["pred_relevant_windows"], truth[d["qid"]]))
            assert per_query[d["qid"]] == pytest.approx(expected, abs=1e-12)
    reported = evaluate_submission(submission, ground_truth)["brief"]["MR-full-mAP"]
    assert round(100 * np.mean(list(per_query.values())), 2) == reported


def test_per_query_average_precision_needs_the_same_qids():
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}, {"qid": 2, "relevant_windows": [[0, 10]]}]
    sub = [{"qid": 1, "pred_relevant_windows": [[50, 60, 0.9], [0, 10, 0.8]]}]
    with pytest.raises(TDDetrInputError, match=r"not in the submission \[1\]: 2"):
        per_query_average_precision(sub, gt)
    assert per_query_average_precision(sub, gt[:1]) == {1: 0.5}


def test_binary_average_precision_matches_pr_curve_definition():
    rng = np.random.default_rng(7)
    for trial in range(200):
        n = int(rng.integers(1, 30))
        scores = rng.integers(0, 4, size=n).astype(float) if trial % 2 else rng.normal(size=n)
        labels = rng.random((3, n)) < rng.random()
        expected = [naive.pr_curve_ap(lab.astype(int).tolist(), scores.tolist()) for lab in labels]
        padded_scores = np.concatenate([scores, rng.normal(size=5)])[None]  # junk past the row length is ignored
        padded_labels = np.concatenate([labels, np.ones((3, 5), bool)], axis=1)[None]
        valid = (np.arange(n + 5) < n)[None]
        ap = binary_average_precision(padded_scores, padded_labels, valid)[0]
        np.testing.assert_allclose(ap, expected, atol=1e-12)


def test_hand_computed_values():
    """Known answers, independent of both implementations."""
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}]
    # Best window second by score: AP = 1/2 at every threshold; R1 (first window) misses.
    sub = [{"qid": 1, "pred_relevant_windows": [[50, 60, 0.9], [0, 10, 0.8]]}]
    metrics = evaluate_submission(sub, gt)
    assert metrics["full"]["MR-mAP"]["average"] == 50.0 and metrics["full"]["MR-R1"]["0.5"] == 0.0
    # R1 takes the FIRST window, not the best-scored one.
    sub = [{"qid": 1, "pred_relevant_windows": [[0, 10, 0.1], [50, 60, 0.9]]}]
    metrics = evaluate_submission(sub, gt)
    assert metrics["full"]["MR-R1"]["0.95"] == 100.0 and metrics["full"]["MR-mAP"]["0.5"] == 50.0
    # IoU 0.7 exactly reaches the 0.7 threshold (thresholds are the rounded floats), not 0.75.
    sub = [{"qid": 1, "pred_relevant_windows": [[0, 7, 1.0]]}]
    full = evaluate_submission(sub, gt)["full"]
    assert (full["MR-R1"]["0.7"], full["MR-R1"]["0.75"]) == (100.0, 0.0)
    assert (full["MR-mAP"]["0.7"], full["MR-mAP"]["0.75"]) == (100.0, 0.0)
    assert full["MR-mIoU"] == 70.0


def test_only_first_ten_windows_count_for_map():
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}]
    misses = [[100, 110, 0.5]] * 10
    metrics = evaluate_submission([{"qid": 1, "pred_relevant_windows": misses + [[0, 10, 0.99]]}], gt)
    assert metrics["full"]["MR-mAP"]["average"] == 0.0


def test_empty_prediction_list_left_out_of_map_but_misses_r1():
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}, {"qid": 2, "relevant_windows": [[0, 10]]}]
    sub = [{"qid": 1, "pred_relevant_windows": [[0, 10, 1.0]]}, {"qid": 2, "pred_relevant_windows": []}]
    full = evaluate_submission(sub, gt)["full"]
    assert full["MR-mAP"]["average"] == 100.0  # qid 2 is not averaged in (official quirk)
    assert full["MR-R1"]["0.5"] == 50.0 and full["num_queries"] == 2


def test_bucket_keeps_in_range_gt_and_counts_other_matches_as_false_positives():
    gt = [{"qid": 1, "relevant_windows": [[0, 6], [20, 100]]}]  # one short, one long window
    sub = [{"qid": 1, "pred_relevant_windows": [[20, 100, 0.9], [0, 6, 0.5]]}]
    metrics = evaluate_submission(sub, gt)
    assert metrics["short"]["MR-mAP"]["average"] == 50.0  # the long match is a false positive first
    assert metrics["long"]["MR-mAP"]["average"] == 100.0
    assert metrics["middle"] == {
        "MR-mAP": {**{k: 0.0 for k in metrics["full"]["MR-mAP"]}}, "MR-R1": {k: 0.0 for k in metrics["full"]["MR-R1"]},
        "MR-mIoU": 0.0, "num_queries": 0,
    }
    assert metrics["short"]["MR-R1"]["0.5"] == 0.0 and metrics["long"]["MR-R1"]["0.5"] == 100.0


def test_greedy_matching_ties_follow_argsort_order():
    # Prediction 1 ties (IoU 9/11) with both GT windows; the official argsort()[::-1] visits the LATER one first,
    # leaving GT 0 for prediction 2, whose IoU with GT 1 (8/12) is under 0.7: two true positives at 0.7 and 0.8.
    gt = [{"qid": 1, "relevant_windows": [[0, 10], [2, 12]]}]
    sub = [{"qid": 1, "pred_relevant_windows": [[1, 11, 0.9], [0, 10, 0.8]]}]
    ap = evaluate_submission(sub, gt)["full"]["MR-mAP"]
    expected = naive.detection_ap(sub[0]["pred_relevant_windows"], gt[0]["relevant_windows"])
    assert [ap[str(t)] for t in naive.MAP_THRESHOLDS] == [round(100 * e, 2) for e in expected]
    assert (ap["0.7"], ap["0.8"], ap["0.85"]) == (100.0, 100.0, 25.0)


def test_highlight_saliency_truncated_and_padded():
    gt = [{
        "qid": 1, "duration": 10, "relevant_windows": [[0, 4]], "relevant_clip_ids": [0, 1],
        "saliency_scores": [[4, 4, 4], [1, 1, 1]],
    }]
    # 5 clips. Argmax beyond the video is a miss; the long tail is cut for AP.
    saliency = [0.9, 0.1, 0.1, 0.1, 0.1, 5.0]
    long_pred = [{"qid": 1, "pred_relevant_windows": [[0, 4, 1]], "pred_saliency_scores": saliency}]
    level = evaluate_submission(long_pred, gt)["HL-min-VeryGood"]
    assert level == {"HL-mAP": 100.0, "HL-Hit1": 0.0}
    # Short prediction zero-padded: clip 0 scores -1 < padded zeros -> ranked last among 5 -> AP = 1/5.
    short_pred = [{"qid": 1, "pred_relevant_windows": [[0, 4, 1]], "pred_saliency_scores": [-1.0]}]
    assert evaluate_submission(short_pred, gt)["HL-min-VeryGood"] == {"HL-mAP": 20.0, "HL-Hit1": 100.0}
