"""The `evaluate` metric module loads offline from the package and gives the flattened evaluate_submission dict."""

import os

import pytest

from td_detr.metrics import EVALUATE_MODULE_PATH, evaluate_submission, unflatten_metrics

GT = [
    {"qid": 1, "query": "q", "vid": "v", "duration": 30.0, "relevant_windows": [[0, 8], [12, 30]],
     "relevant_clip_ids": [0, 1, 7], "saliency_scores": [[4, 2, 1], [3, 3, 3], [0, 4, 2]]},
    {"qid": 2, "query": "q", "vid": "v", "duration": 12.0, "relevant_windows": [[2, 4]],
     "relevant_clip_ids": [1], "saliency_scores": [[2, 2, 2]]},
]
SUB = [
    {"qid": 1, "query": "q", "pred_relevant_windows": [[12, 28, 0.9], [0, 8, 0.7], [4, 6, 0.7]],
     "pred_saliency_scores": [0.3, 0.9, 0.1, 0.1, 0.5, 0.2, 0.0, 0.8]},
    {"qid": 2, "query": "q", "pred_relevant_windows": [], "pred_saliency_scores": [0.1, 0.2]},
]


@pytest.fixture(scope="module")
def metric():
    with pytest.MonkeyPatch.context() as patch:  # offline, without leaking the setting into other tests
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_EVALUATE_OFFLINE", "1")
        evaluate = pytest.importorskip("evaluate")
        return evaluate.load(EVALUATE_MODULE_PATH, keep_in_memory=True)


def test_module_file_ships_inside_the_package():
    assert EVALUATE_MODULE_PATH.endswith("td_detr/metrics/td_detr_moment_retrieval/td_detr_moment_retrieval.py")
    assert os.path.isfile(EVALUATE_MODULE_PATH)


def test_compute_equals_evaluate_submission(metric):
    flat = metric.compute(predictions=SUB, references=GT)
    assert all("/" in key and not isinstance(value, dict) for key, value in flat.items())
    assert unflatten_metrics(flat) == evaluate_submission(SUB, GT)
    assert flat["full/MR-mAP/0.5"] == 100.0  # qid 2 (no windows) is left out of mAP, as officially


def test_incremental_adds_and_charades_style_references(metric):
    for prediction, reference in zip(SUB, GT):
        metric.add(prediction=prediction, reference=reference)
    assert unflatten_metrics(metric.compute()) == evaluate_submission(SUB, GT)
    charades_gt = [{"qid": g["qid"], "relevant_windows": g["relevant_windows"]} for g in GT]
    charades_sub = [{"qid": s["qid"], "pred_relevant_windows": s["pred_relevant_windows"]} for s in SUB]
    flat = metric.compute(predictions=charades_sub, references=charades_gt)
    assert not any(key.startswith("HL") for key in flat)
    assert unflatten_metrics(flat) == evaluate_submission(charades_sub, charades_gt)


def test_bad_input_raises_the_package_error(metric):
    from td_detr.errors import TDDetrInputError

    bad = [dict(SUB[0], pred_relevant_windows=[[9.0, 3.0, 0.5]]), SUB[1]]
    with pytest.raises(TDDetrInputError, match=r"start > end \[1\]: 1"):
        metric.compute(predictions=bad, references=GT)


def test_duplicate_qids_and_impossible_max_pred_windows_are_named(metric):
    from td_detr.errors import TDDetrInputError

    with pytest.raises(TDDetrInputError, match=r"predictions: duplicate qids \[1\]"):
        metric.compute(predictions=[SUB[0], SUB[0], SUB[1]], references=GT)
    with pytest.raises(TDDetrInputError, match=r"references: duplicate qids \[2\]"):
        metric.add_batch(predictions=SUB, references=[GT[0], GT[1], GT[1]])
    for value in (0, -3):
        with pytest.raises(TDDetrInputError, match=f"max_pred_windows must be a positive int.*got {value}"):
            metric.compute(predictions=SUB, references=GT, max_pred_windows=value)
    # the option reaches the metric: with one window per query, qid 1's second GT window cannot be matched
    assert metric.compute(predictions=SUB, references=GT, max_pred_windows=1)["full/MR-mAP/0.5"] < 100.0
