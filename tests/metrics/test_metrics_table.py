"""format_metrics_table and the flatten / unflatten round trip."""

from td_detr.metrics import evaluate_submission, flatten_metrics, format_metrics_table, unflatten_metrics

GT = [
    {"qid": 1, "duration": 20, "relevant_windows": [[0, 6]], "relevant_clip_ids": [0], "saliency_scores": [[4, 4, 4]]}
]
SUB = [{"qid": 1, "pred_relevant_windows": [[0, 6, 0.9]], "pred_saliency_scores": [1.0, 0.0]}]


def test_table_lists_buckets_levels_and_values():
    table = format_metrics_table(evaluate_submission(SUB, GT))
    lines = table.splitlines()
    assert lines[0].split() == ["Moment", "retrieval", "full", "short", "middle", "long"]
    assert lines[1].split() == ["queries", "1", "1", "0", "0"]
    r1 = next(line for line in lines if line.strip().startswith("R1@0.5")).split()
    assert r1 == ["R1@0.5", "100.00", "100.00", "n/a", "n/a"]  # middle / long hold no query: no score, not 0.00
    assert "Highlight detection" in table and "VeryGood" in table
    hit_row = next(line for line in lines if line.strip().startswith("HIT@1"))
    assert hit_row.split() == ["HIT@1", "100.00", "100.00", "100.00"]


def test_table_tolerates_partial_and_brief_only_dicts():
    partial = {"full": {"MR-R1": {"0.5": 12.5}}}
    assert format_metrics_table(partial).splitlines()[1].split() == ["R1@0.5", "12.50"]
    brief_only = format_metrics_table({"brief": {"MR-full-mAP": 3.0, "note": "x"}})
    assert brief_only.split() == ["MR-full-mAP", "3.00"]


def test_flatten_round_trip():
    metrics = evaluate_submission(SUB, GT)
    flat = flatten_metrics(metrics)
    assert flat["full/MR-mAP/0.5"] == 100.0 and flat["brief/MR-full-mAP"] == metrics["brief"]["MR-full-mAP"]
    assert all(not isinstance(v, dict) for v in flat.values())
    assert unflatten_metrics(flat) == metrics
