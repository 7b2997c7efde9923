"""The one prediction loop: batches from the evaluation collator → model → submission records (the standard
prediction format), post-processed by the collator's :class:`~td_detr.processing_td_detr.TDDetrProcessor`. Used by
`td-detr evaluate`, `spurious-eval` and the Trainer's evaluation."""

from __future__ import annotations

import torch


def records_from_outputs(processor, outputs, meta: list[dict]) -> list[dict]:
    """One submission record per query (``meta`` holds one entry per query, with the first clip of each of its model
    rows in ``window_starts`` when its video was cut into windows): qid, query, vid, `pred_relevant_windows` (best
    first, seconds) and `pred_saliency_scores` (one per clip)."""
    processed = processor.post_process_moment_retrieval(
        outputs, [info["duration"] for info in meta], [info.get("window_starts", [0]) for info in meta]
    )
    return [
        {"qid": info["qid"], "query": info.get("query", ""), "vid": info.get("vid", ""), **result}
        for info, result in zip(meta, processed)
    ]


@torch.no_grad()
def predict_batches(model, processor, batches, prepare_inputs=None, gather=None) -> tuple[list[dict], list]:
    """Predict collated batches (eval mode). ``prepare_inputs(batch)`` moves a batch to the model (default: its model
    inputs to the model's device); ``gather(records)`` collects a batch's records across processes (default: none).
    Returns (records, per-batch losses of batches with labels)."""
    model.eval()
    if prepare_inputs is None:
        device = next(model.parameters()).device
        names = processor.model_input_names

        def prepare_inputs(batch):
            return {name: batch[name].to(device) for name in names}

    records, losses = [], []
    for batch in batches:
        meta = batch.pop("meta")
        outputs = model(**prepare_inputs(batch))
        if outputs.loss is not None:
            losses.append(outputs.loss.detach().float())
        batch_records = records_from_outputs(processor, outputs, meta)
        records.extend(gather(batch_records) if gather is not None else batch_records)
    return records, losses


def predict_dataset(model, dataset, collator, batch_size: int = 64, progress: bool = True) -> list[dict]:
    """Predict every row of a data set with an evaluation collator and return records in data set order."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator, shuffle=False)
    batches = tqdm(loader, desc="predicting", disable=not progress, unit="batch")
    return predict_batches(model, collator.processor, batches)[0]
