"""Data: the standard on-disk layout (:mod:`.layout`), the ``datasets`` builder (:mod:`.builder`), the synthetic
default data set (:mod:`.synthetic`), label derivation (:mod:`.labels`), the evaluator's ground truth of a data set
(:mod:`.ground_truth`), the video synthesizer (:mod:`.synthesis`) and the batch collator (:mod:`.collator`).

Names are imported on first use, so ``import td_detr.data.layout`` does not pull in ``datasets`` or torch.
"""

from __future__ import annotations

from ..lazy_exports import lazy_getattr

_EXPORTS = {
    "DatasetSettings": "builder",
    "MomentRetrievalBuilder": "builder",
    "MomentRetrievalConfig": "builder",
    "get_dataset_settings": "builder",
    "load_moment_retrieval_dataset": "builder",
    "load_text_features": "layout",
    "load_video_feature_types": "layout",
    "load_video_features": "layout",
    "read_annotations": "layout",
    "write_annotations": "layout",
    "write_text_features": "layout",
    "write_video_features": "layout",
    "SyntheticWorld": "synthetic",
    "ensure_synthetic_dataset": "synthetic",
    "write_synthetic_dataset": "synthetic",
    "DataCollatorForMomentRetrieval": "collator",
    "VideoSynthesizer": "synthesis",
    "video_similarity": "synthesis",
    "row_labels": "labels",
    "ground_truth_records": "ground_truth",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
