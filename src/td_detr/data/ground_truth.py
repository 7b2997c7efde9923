"""Ground truth of a data set's rows in the official evaluator's format (what :func:`td_detr.metrics.evaluate_submission`
scores predictions against), read from the annotation columns only: no features, no torch."""

from __future__ import annotations

GROUND_TRUTH_COLUMNS = ("qid", "query", "vid", "duration", "relevant_windows", "relevant_clip_ids", "saliency_scores")


def ground_truth_records(dataset) -> list[dict]:
    """Ground-truth records (the official evaluator's format) of a data set's rows, without reading features."""
    columns = [c for c in GROUND_TRUTH_COLUMNS if c in dataset.column_names]
    rows = dataset.select_columns(columns).with_format(None)
    records = []
    for row in rows:
        record = {key: row[key] for key in columns}
        if not record.get("relevant_clip_ids"):
            record.pop("relevant_clip_ids", None)
            record.pop("saliency_scores", None)
        records.append(record)
    return records
