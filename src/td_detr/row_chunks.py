"""A training step's forward and backward in row chunks, for the gradient of the whole batch at a chunk's memory.

A TD-DETR training batch holds the synthesized rows too (2B rows for a batch of B), and every row goes through the
T2V layers and the encoder twice (with its text and with a negative text), so the activations autograd keeps scale
with 4B rows. Run in chunks of rows, each chunk's activations are freed by its backward before the next one starts.

Every loss term is a mean over rows, or over matched (prediction, window) pairs, so the whole batch's loss is a
weighted sum of the chunks' losses: a chunk's moment terms (L1, gIoU, per decoder layer) weigh its matched pairs / the
batch's (each row matches min(num_queries, its windows)), its classification and saliency terms its rows / the
batch's. The negative pair crosses rows (row i with the text of row j): each chunk brings the texts of its rows'
negatives along as extra text rows. Without dropout the summed gradient is the whole batch's up to float rounding.
With dropout the expected gradient is the same; a negative text is then dropped out independently of its own row's
use (in one batched pass both uses share a mask), which only changes the variance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

MOMENT_TERMS = ("loss_span", "loss_giou")  # means over matched pairs; every other term is a mean over rows


def matched_pairs(labels: list[dict], num_queries: int) -> list[int]:
    """Per row, the (prediction, window) pairs the Hungarian matcher makes: min(num_queries, windows)."""
    return [min(num_queries, len(label["spans"])) for label in labels]


def chunk_weights(labels: list[dict], chunks: list[slice], num_queries: int) -> list[dict[str, float]]:
    """Per chunk, the factor of each kind of term: `"pairs"` (its matched pairs / the batch's) and `"rows"`."""
    pairs = matched_pairs(labels, num_queries)
    total_pairs, total_rows = sum(pairs), len(labels)
    return [dict(pairs=sum(pairs[chunk]) / total_pairs if total_pairs else 0.0,
                 rows=len(labels[chunk]) / total_rows) for chunk in chunks]


def term_weight(name: str, weights: dict[str, float]) -> float:
    """The chunk factor of one loss term (auxiliary terms are named `<term>_<layer>`)."""
    return weights["pairs"] if name.rsplit("_", 1)[0] in MOMENT_TERMS or name in MOMENT_TERMS else weights["rows"]


def chunk_inputs(inputs: dict, chunk: slice) -> dict:
    """The model inputs of the rows in `chunk`, their negatives' texts appended as extra text rows."""
    rows = inputs["video_features"].shape[0]
    picked = {key: value[chunk] if isinstance(value, (torch.Tensor, list)) else value for key, value in inputs.items()}
    negatives = inputs.get("negative_text_index")
    if negatives is None:  # the model's default: the next row of the whole batch (wrapping around)
        negatives = torch.roll(torch.arange(rows), -1)
    negatives = torch.as_tensor(negatives)[chunk]
    valid = negatives >= 0
    texts = negatives.clamp(min=0)  # a row without a negative (-1) takes any text; the model skips it
    own = int(picked["video_features"].shape[0])
    picked["text_features"] = torch.cat((picked["text_features"], inputs["text_features"][texts]))
    picked["text_mask"] = torch.cat((picked["text_mask"], inputs["text_mask"][texts]))
    picked["negative_text_index"] = torch.where(valid, own + torch.arange(own), torch.full_like(negatives, -1))
    return picked


def chunked_forward_backward(
    model, inputs: dict, chunk_rows: int, backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
    forward_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward and `backward` the batch's loss in chunks of `chunk_rows` rows; gradients accumulate in the
    parameters as one backward of the whole batch's loss would leave them. `inputs`: a training batch of
    [`TDDetrForMomentRetrieval`] with `labels` (no `meta`); `forward_context`: entered around each forward (e.g. the
    Trainer's autocast). Returns the whole batch's loss and unweighted terms, detached."""
    labels = inputs["labels"]
    rows = len(labels)
    chunks = [slice(start, min(start + chunk_rows, rows)) for start in range(0, rows, chunk_rows)]
    core = getattr(model, "module", model)  # a wrapped (DataParallel / DDP) model's own
    weight_dict = core.criterion.weight_dict
    total, terms = torch.zeros(()), {}
    for chunk, weights in zip(chunks, chunk_weights(labels, chunks, core.config.num_queries)):
        with forward_context():
            outputs = model(**chunk_inputs(inputs, chunk))
        scaled = {name: value * term_weight(name, weights) for name, value in outputs.loss_dict.items()}
        loss = sum(value * weight_dict[name] for name, value in scaled.items())
        backward(loss)
        total = total + loss.detach().cpu()
        for name, value in scaled.items():
            terms[name] = terms.get(name, 0) + value.detach().cpu()
    return total, terms
