"""`td-detr score` end to end through td_detr.cli.main."""

import json

import pytest

from td_detr.cli import main
from td_detr.metrics import evaluate_submission

GT = [
    {"qid": q, "query": "q", "vid": "v", "duration": 20.0, "relevant_windows": [[2 * q, 2 * q + 6]],
     "relevant_clip_ids": [q, q + 1], "saliency_scores": [[4, 4, 2], [1, 3, 4]]}
    for q in range(1, 6)
]
SUB = [
    {"qid": q, "pred_relevant_windows": [[2 * q, 2 * q + 6 + (q % 3) * 2, 0.9], [0, 4, 0.2]],
     "pred_saliency_scores": [float((q * c) % 7) for c in range(10)]}
    for q in range(1, 6)
]


def write_jsonl(path, records, extra_lines=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "".join(extra_lines))
    return path


def test_scores_prints_table_and_writes_json(tmp_path, capsys):
    preds, truth = write_jsonl(tmp_path / "p.jsonl", SUB), write_jsonl(tmp_path / "g.jsonl", GT)
    out = tmp_path / "sub" / "metrics.json"
    assert main(["score", "--predictions", str(preds), "--ground-truth", str(truth), "--output", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written == evaluate_submission(SUB, GT)
    stdout = capsys.readouterr().out
    assert "Moment retrieval" in stdout and "Highlight detection" in stdout and str(out) in stdout
    r1 = next(line for line in stdout.splitlines() if line.strip().startswith("R1@0.5")).split()
    assert float(r1[1]) == written["full"]["MR-R1"]["0.5"]


def test_invalid_submission_exits_2_and_names_qids(tmp_path, capsys):
    bad = [dict(r) for r in SUB]
    bad[1]["pred_relevant_windows"] = [[9, 3, 0.5]]
    bad[2]["pred_relevant_windows"] = [[0, 3, float("nan")]]
    preds = write_jsonl(tmp_path / "p.jsonl", bad[:4])  # qid 5 missing
    truth = write_jsonl(tmp_path / "g.jsonl", GT)
    out = tmp_path / "m.json"
    assert main(["score", "--predictions", str(preds), "--ground-truth", str(truth), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "td-detr score: error" in err and "start > end [1]: 2" in err
    assert "values in 'pred_relevant_windows' [1]: 3" in err
    assert "not in the submission [1]: 5" in err
    assert not out.exists()


def test_malformed_line_reports_file_and_line(tmp_path, capsys):
    preds = write_jsonl(tmp_path / "p.jsonl", SUB, extra_lines=["{oops\n"])
    truth = write_jsonl(tmp_path / "g.jsonl", GT)
    assert main(["score", "--predictions", str(preds), "--ground-truth", str(truth)]) == 2
    err = capsys.readouterr().err
    assert str(preds) in err and "line 6" in err


def test_allow_missing_scores_what_is_there_and_says_so(tmp_path, capsys):
    preds, truth = write_jsonl(tmp_path / "p.jsonl", SUB[:3]), write_jsonl(tmp_path / "g.jsonl", GT)
    out = tmp_path / "m.json"
    args = ["score", "--predictions", str(preds), "--ground-truth", str(truth), "--output", str(out)]
    assert main(args) == 2
    capsys.readouterr()
    assert main(args + ["--allow-missing"]) == 0
    assert "scored 3 of 5 ground-truth queries (2 missing" in capsys.readouterr().err
    assert json.loads(out.read_text())["full"]["num_queries"] == 3


@pytest.mark.parametrize("flag", [[], ["--charades"]])
def test_charades_mode_skips_highlights(tmp_path, capsys, flag):
    truth_records = [{k: g[k] for k in ("qid", "query", "vid", "duration", "relevant_windows")} for g in GT]
    truth = write_jsonl(tmp_path / "g.jsonl", truth_records if not flag else GT)
    preds = write_jsonl(tmp_path / "p.jsonl", SUB)
    out = tmp_path / "m.json"
    assert main(["score", "--predictions", str(preds), "--ground-truth", str(truth), "--output", str(out), *flag]) == 0
    written = json.loads(out.read_text())
    assert not any(key.startswith("HL") for key in written) and "MR-full-mIoU" in written["brief"]
    assert "Highlight detection" not in capsys.readouterr().out


def test_clip_length_changes_the_clip_count(tmp_path):
    preds, truth = write_jsonl(tmp_path / "p.jsonl", SUB), write_jsonl(tmp_path / "g.jsonl", GT)
    out = tmp_path / "m.json"
    base = ["score", "--predictions", str(preds), "--ground-truth", str(truth), "--output", str(out)]
    assert main(base + ["--clip-length", "1"]) == 0
    assert json.loads(out.read_text()) == evaluate_submission(SUB, GT, clip_length=1.0)
    assert main(base + ["--clip-length", "0"]) == 2
