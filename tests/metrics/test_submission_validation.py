"""Bad submissions / annotations raise ONE TDDetrInputError naming every offending qid (or file line)."""

import json
import math

import numpy as np
import pytest

from td_detr.errors import TDDetrInputError
from td_detr.metrics import evaluate_submission, pack_ground_truth, pack_submission, read_jsonl


def gt(qids=(1, 2, 3)):
    return [
        {
            "qid": q, "duration": 20.0, "relevant_windows": [[0, 10]], "relevant_clip_ids": [0, 1],
            "saliency_scores": [[4, 3, 2], [0, 1, 2]],
        }
        for q in qids
    ]


def pred(qid, windows=None, saliency=(0.5, 0.1)):
    record = {"qid": qid, "pred_relevant_windows": [[0, 10, 0.9]] if windows is None else windows}
    if saliency is not None:
        record["pred_saliency_scores"] = list(saliency)
    return record


def error_of(submission, ground_truth, **kwargs) -> str:
    with pytest.raises(TDDetrInputError) as info:
        evaluate_submission(submission, ground_truth, **kwargs)
    return str(info.value)


def test_all_problems_reported_together_with_their_qids():
    submission = [
        pred(1, [[5, 2, 0.9]]),  # start > end
        pred(2, [[0, 10, math.nan]]),  # NaN score
        pred(2),  # duplicate
        pred(7, [[0, "ten", 0.5]]),  # not a number, unknown qid
    ]
    message = error_of(submission, gt())
    assert "start > end [1]: 1" in message
    assert "NaN or infinite values in 'pred_relevant_windows' [1]: 2" in message
    assert "duplicate qids [1]: 2" in message
    assert "'pred_relevant_windows' is not a list of [number, number, number] rows [1]: 7" in message
    assert "not in the submission [1]: 3" in message
    assert "not in the ground truth [1]: 7" in message


def test_missing_qids_allowed_only_on_request_and_unknown_ones_never():
    submission = [pred(1), pred(2)]
    assert "not in the submission [1]: 3" in error_of(submission, gt())
    metrics = evaluate_submission(submission, gt(), allow_missing=True)
    assert metrics["full"]["num_queries"] == 2
    assert "not in the ground truth [1]: 9" in error_of(submission + [pred(9)], gt(), allow_missing=True)
    # match_number=False is the official "shared qids only" mode.
    assert evaluate_submission(submission + [pred(9)], gt(), match_number=False)["full"]["num_queries"] == 2


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"pred_relevant_windows": [[0, 1, 0.5]]}, "records without an integer 'qid' [1]: record 1"),
        ({"qid": "1", "pred_relevant_windows": [[0, 1, 0.5]]}, "records without an integer 'qid' [1]: record 1"),
        ({"qid": 1, "pred_relevant_windows": [[0, 1]]}, "is not a list of [number, number, number] rows [1]: 1"),
        ({"qid": 1, "pred_relevant_windows": {"a": 1}}, "is not a list of [number, number, number] rows [1]: 1"),
        ({"qid": 1, "pred_relevant_windows": [[0, 1, None]]}, "[number, number, number] rows [1]: 1"),
        ({"qid": 1, "pred_relevant_windows": [[0, math.inf, 0.5]]}, "NaN or infinite values"),
        ({"qid": 1, "pred_saliency_scores": []}, "empty 'pred_saliency_scores' [1]: 1"),
        ({"qid": 1, "pred_saliency_scores": [0.1, math.nan]}, "NaN or infinite values in 'pred_saliency_scores' [1]: 1"),
        ({"qid": 1}, "no 'pred_relevant_windows' nor 'pred_saliency_scores'"),
    ],
)
def test_malformed_records(record, expected):
    with pytest.raises(TDDetrInputError, match=None) as info:
        pack_submission([record])
    assert expected in str(info.value)


def test_key_present_on_some_lines_only():
    submission = [pred(1), pred(2, saliency=None), pred(3, saliency=None)]
    assert "'pred_saliency_scores' missing (present on other lines) [2]: 2, 3" in error_of(submission, gt())


def test_ground_truth_problems_named():
    bad = gt((1, 2, 3, 4))
    bad[0]["relevant_windows"] = []
    bad[1]["relevant_clip_ids"] = [0, 10]  # clip 10 >= int(20 / 2)
    bad[2]["saliency_scores"] = [[1, 2, 3]]  # one row for two clip ids
    del bad[3]["duration"]
    with pytest.raises(TDDetrInputError) as info:
        pack_ground_truth(bad)
    message = str(info.value)
    assert "no 'relevant_windows' (nothing to score against) [1]: 1" in message
    assert "missing one of ('duration', 'relevant_clip_ids', 'saliency_scores') [1]: 4" in message
    good = gt((1, 2, 3))
    good[0]["relevant_clip_ids"] = [0, 10]
    good[1]["saliency_scores"] = [[1, 2, 3]]
    with pytest.raises(TDDetrInputError) as info:
        pack_ground_truth(good)
    assert "relevant_clip_ids outside [0, int(duration / 2)) [1]: 1" in str(info.value)
    assert "differ in length [1]: 2" in str(info.value)


def test_many_offenders_are_summarised():
    submission = [pred(q, [[5, 1, 0.5]]) for q in range(50)]
    message = error_of(submission, gt(range(50)))
    assert "start > end [50]: 0, 1, 2" in message and "(30 more)" in message


def test_read_jsonl_reports_every_malformed_line(tmp_path):
    path = tmp_path / "preds.jsonl"
    lines = [json.dumps(pred(1)), "{not json", "", "[1, 2]", json.dumps(pred(2))]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TDDetrInputError) as info:
        read_jsonl(path, what="predictions")
    message = str(info.value)
    assert str(path) in message and "line 2 (" in message and "line 4 (expected a JSON object, got list)" in message
    assert "line 5" not in message
    with pytest.raises(TDDetrInputError, match="not found"):
        read_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TDDetrInputError, match="no records"):
        read_jsonl(tmp_path / "empty.jsonl")


def test_packing_pads_and_counts():
    packed = pack_submission([pred(1, [[0, 2, 0.1]] * 12), pred(2, [], saliency=(1.0, 2.0, 3.0))], max_windows=10)
    assert packed.windows.shape == (2, 10, 3) and packed.num_windows.tolist() == [10, 0]
    assert packed.num_saliency.tolist() == [2, 3] and packed.saliency[0].tolist() == [0.5, 0.1, 0.0]
    truth = pack_ground_truth(gt((5,)))
    assert truth.num_clips.tolist() == [10]
    np.testing.assert_array_equal(truth.saliency[0, :3], [[4, 3, 2], [0, 1, 2], [0, 0, 0]])
