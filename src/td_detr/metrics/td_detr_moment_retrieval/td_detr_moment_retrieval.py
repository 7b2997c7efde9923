"""``evaluate`` metric module: QVHighlights / Charades-STA moment retrieval and highlight detection.

Load it offline with ``evaluate.load(td_detr.metrics.EVALUATE_MODULE_PATH)`` (works with ``HF_HUB_OFFLINE=1
HF_EVALUATE_OFFLINE=1``). It is a thin wrapper: the numbers come from :func:`td_detr.metrics.evaluate_submission`.
"""

from collections import Counter

import datasets
import evaluate

from td_detr.errors import TDDetrInputError
from td_detr.metrics import evaluate_submission, flatten_metrics

_DESCRIPTION = """
Moment retrieval (R1@IoU, mAP@IoU per GT-length bucket, mIoU of the top-1 window) and highlight detection
(HIT@1 and mAP at the Fair / Good / VeryGood saliency levels), numerically equal to the official QVHighlights
evaluator (moment_detr standalone_eval) to the 2 decimals it prints. The nested official result is flattened into
one level with "/"-joined keys (e.g. "brief/MR-full-mAP", "full/MR-mAP/0.5", "HL-min-VeryGood/HL-mAP");
td_detr.metrics.unflatten_metrics restores the nesting.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: one dict per query, the submission format: "qid" (int), "pred_relevant_windows"
        (list of [start_s, end_s, score], sorted by score; R1 uses the first one), optional
        "pred_saliency_scores" (one float per clip). Other keys are ignored.
    references: one dict per query, the annotation format: "qid", "relevant_windows" (list of [start_s, end_s]),
        and for highlight metrics "duration", "relevant_clip_ids", "saliency_scores" (rows of 3 ints).
    match_number (bool, default True): the submitted qids must equal the reference qids; False scores the shared ones.
    allow_missing (bool, default False): score only the submitted queries (unknown qids still fail).
    clip_length (float, default 2.0): seconds per saliency clip.
    highlights (bool or None, default None): compute highlight metrics; None = when both sides carry saliency.
    max_pred_windows (int, default 10): windows per query used for mAP (at least 1).
Returns:
    dict of float (and int "num_queries") values with "/"-joined keys; every key of the official output is there.
Examples:
    >>> metric = evaluate.load(td_detr.metrics.EVALUATE_MODULE_PATH)
    >>> flat = metric.compute(predictions=submission, references=ground_truth)
    >>> flat["brief/MR-full-R1@0.5"]
"""

_CITATION = """
@inproceedings{lei2021qvhighlights,
  title={QVHighlights: Detecting Moments and Highlights in Videos via Natural Language Queries},
  author={Lei, Jie and Berg, Tamara L. and Bansal, Mohit},
  booktitle={NeurIPS},
  year={2021}
}
"""

_FEATURES = datasets.Features(
    {
        "predictions": {
            "qid": datasets.Value("int64"),
            "pred_relevant_windows": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
            "pred_saliency_scores": datasets.Sequence(datasets.Value("float64")),
        },
        "references": {
            "qid": datasets.Value("int64"),
            "duration": datasets.Value("float64"),
            "relevant_windows": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
            "relevant_clip_ids": datasets.Sequence(datasets.Value("int64")),
            "saliency_scores": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
        },
    }
)


def _select_fields(records, field: str):
    # Keep only the feature keys (records usually also hold "query", "vid", ...); a missing key becomes None.
    if records is None:
        return None
    keys = list(_FEATURES[field])
    return [{key: record.get(key) for key in keys} if isinstance(record, dict) else record for record in records]


def _check_pairs(predictions, references):
    # evaluate needs as many predictions as references; say why they differ (a duplicated qid, most often).
    if predictions is None or references is None or len(predictions) == len(references):
        return
    for name, records in (("predictions", predictions), ("references", references)):
        counts = Counter(record.get("qid") for record in records if isinstance(record, dict))
        duplicated = sorted(qid for qid, count in counts.items() if count > 1)
        if duplicated:
            raise TDDetrInputError(f"{name}: duplicate qids {duplicated[:10]}: give one record per query")
    raise TDDetrInputError(f"{len(predictions)} predictions but {len(references)} references: the evaluate module "
                           "takes one prediction per reference (td_detr.metrics.evaluate_submission matches by qid)")


def _without_nulls(records):
    # Arrow stores a key a record lacked as None; the evaluator expects the key to be absent.
    return [{key: value for key, value in record.items() if value is not None} for record in records]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TdDetrMomentRetrieval(evaluate.Metric):
    """Moment retrieval and highlight detection metrics of the official QVHighlights evaluator."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_FEATURES,
            reference_urls=["https://github.com/jayleicn/moment_detr/tree/main/standalone_eval"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Score the added examples plus ``predictions`` / ``references`` (records; extra keys are ignored)."""
        _check_pairs(predictions, references)
        return super().compute(
            predictions=_select_fields(predictions, "predictions"),
            references=_select_fields(references, "references"),
            **kwargs,
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of submission / annotation records (extra keys are ignored)."""
        _check_pairs(predictions, references)
        return super().add_batch(
            predictions=_select_fields(predictions, "predictions"),
            references=_select_fields(references, "references"),
            **kwargs,
        )

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one submission / annotation record pair (extra keys are ignored)."""
        return super().add(
            prediction=None if prediction is None else _select_fields([prediction], "predictions")[0],
            reference=None if reference is None else _select_fields([reference], "references")[0],
            **kwargs,
        )

    def _enforce_nested_string_type(self, schema, obj):
        # evaluate 0.4.6 type-checks the first example and cannot take None (an absent optional key) there.
        if obj is None:
            return None
        return super()._enforce_nested_string_type(schema, obj)

    def _compute(
        self, predictions, references, match_number=True, allow_missing=False, clip_length=2.0, highlights=None,
        max_pred_windows=10,
    ):
        metrics = evaluate_submission(
            _without_nulls(predictions), _without_nulls(references), match_number=match_number,
            allow_missing=allow_missing, clip_length=clip_length, highlights=highlights,
            max_pred_windows=max_pred_windows,
        )
        return flatten_metrics(metrics)
