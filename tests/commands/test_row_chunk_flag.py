"""`td-detr train --row-chunk-size N` trains through `td_detr.row_chunks` (the same gradient in chunks of N rows)."""

from __future__ import annotations

import json

import td_detr.row_chunks
from td_detr.cli import main


def test_row_chunk_size_runs_every_training_step_in_chunks(workspace, tmp_path, monkeypatch):
    root, data, config = workspace
    calls = []
    original = td_detr.row_chunks.chunked_forward_backward
    monkeypatch.setattr(td_detr.row_chunks, "chunked_forward_backward",
                        lambda model, inputs, rows, **kw: calls.append((len(inputs["labels"]), rows))
                        or original(model, inputs, rows, **kw))
    output = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config),
                 "--max-steps", "2", "--batch-size", "8", "--row-chunk-size", "4", "--output-dir", str(output),
                 "--cache-dir", str(root / "cache")]) == 0
    # two optimizer steps, each a batch of 8 grown by the synthesizer, run in chunks of 4 rows
    assert len(calls) == 2 and all(rows > 8 and chunk == 4 for rows, chunk in calls), calls
    assert json.loads((output / "metrics.json").read_text())


def test_resuming_with_another_row_chunk_size_is_refused(workspace, tmp_path, capsys):
    # Chunks draw the negatives' dropout masks apart from their rows: a different trajectory, so a different run.
    root, data, config = workspace
    output = tmp_path / "run"
    common = ["train", "--dataset", "synthetic", "--data-dir", str(data), "--config", str(config), "--batch-size", "8",
              "--output-dir", str(output), "--cache-dir", str(root / "cache")]
    assert main(common + ["--max-steps", "1", "--row-chunk-size", "4"]) == 0
    assert json.loads((output / "run.json").read_text())["run"]["training"]["row_chunk_size"] == 4
    capsys.readouterr()
    assert main(common + ["--max-steps", "2", "--resume"]) == 2
    assert "training.row_chunk_size (4 → None)" in capsys.readouterr().err
