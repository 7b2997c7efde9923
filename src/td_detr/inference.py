"""Batch inference: model outputs → submission records (the standard prediction format), for whole data sets or
single (video, query) pairs."""

from __future__ import annotations

import torch


def records_from_outputs(model, outputs, meta: list[dict]) -> list[dict]:
    """One submission record per query: qid, query, vid, `pred_relevant_windows` (best first, seconds) and
    `pred_saliency_scores` (one per valid clip)."""
    processed = model.post_process(outputs, [info["duration"] for info in meta])
    return [
        {"qid": info["qid"], "query": info.get("query", ""), "vid": info.get("vid", ""), **result}
        for info, result in zip(meta, processed)
    ]


@torch.no_grad()
def predict_dataset(model, dataset, collator, batch_size: int = 64, progress: bool = True) -> list[dict]:
    """Predict every row of a data set (eval mode, no synthesis) and return records in data set order."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator, shuffle=False)
    records = []
    for batch in tqdm(loader, desc="predicting", disable=not progress, unit="batch"):
        meta = batch.pop("meta")
        batch.pop("labels", None)
        inputs = {key: value.to(device) for key, value in batch.items()}
        records.extend(records_from_outputs(model, model(**inputs), meta))
    return records
