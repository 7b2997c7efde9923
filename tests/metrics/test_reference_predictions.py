"""Real QVHighlights val predictions reproduce every number the official evaluator gives for them (100 queries of the
reference prediction file, the official numbers computed for exactly those: tests/fixtures/README.md)."""

import json

from td_detr.metrics import evaluate_submission, read_jsonl

from fixture_files import CHARADES_STA, QVHIGHLIGHTS, REFERENCE_OFFICIAL_METRICS, REFERENCE_PREDICTIONS

GROUND_TRUTH = QVHIGHLIGHTS / "highlight_val_release.jsonl"
CHARADES_TEST = CHARADES_STA / "charades_sta_test_tvr_format.jsonl"


def official_leaves(node, path=()):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from official_leaves(value, path + (key,))
        else:
            yield path + (key,), value


def test_reference_file_reproduces_every_official_number():
    official = json.loads(REFERENCE_OFFICIAL_METRICS.read_text())
    metrics = evaluate_submission(read_jsonl(REFERENCE_PREDICTIONS), read_jsonl(GROUND_TRUTH))
    leaves = list(official_leaves(official))
    assert len(leaves) == 14 + 3 * 2 + 4 * 21  # brief, HL levels, 4 buckets x (11 mAP + 10 R1)
    for path, value in leaves:
        node = metrics
        for key in path:
            node = node[key]
        assert node == value, "/".join(path)
    assert list(metrics) == list(official)  # same top-level order: brief first, then sorted keys
    assert [k for k in metrics["brief"] if k in official["brief"]] == list(official["brief"])


def test_charades_ground_truth_scores_without_highlights_and_with_an_empty_long_bucket():
    ground_truth = read_jsonl(CHARADES_TEST)
    # Perfect top-1 windows, rounded to whole seconds as CG-DETR's Charades post-processing does.
    submission = [
        {"qid": d["qid"], "pred_relevant_windows": [[round(s), round(e), 0.9] for s, e in d["relevant_windows"]],
         "pred_saliency_scores": [0.0, 1.0]}
        for d in ground_truth
    ]
    metrics = evaluate_submission(submission, ground_truth)
    assert not any(key.startswith("HL") for key in metrics)  # the GT has no saliency labels
    assert metrics["long"]["num_queries"] == 0 and metrics["long"]["MR-mAP"]["average"] == 0.0
    assert metrics["full"]["num_queries"] == 300
    brief = metrics["brief"]
    assert brief["MR-full-R1@0.3"] == 100.0
    assert 80.0 < brief["MR-full-R1@0.7"] <= brief["MR-full-R1@0.5"] <= 100.0
    assert 85.0 < brief["MR-full-mIoU"] < 100.0
