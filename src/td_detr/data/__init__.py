"""Data: the standard on-disk layout (:mod:`.layout`), the ``datasets`` builder (:mod:`.builder`), the synthetic
default data set (:mod:`.synthetic`), label derivation (:mod:`.labels`), the evaluator's ground truth of a data set
(:mod:`.ground_truth`), the video synthesizer (:mod:`.synthesis`) and the batch collator (:mod:`.collator`).

A transformers `_LazyModule`: names are imported on first use, so ``import td_detr.data.layout`` does not pull in
``datasets`` or torch.
"""

from typing import TYPE_CHECKING

from transformers.utils.import_utils import _LazyModule

_import_structure = {
    "builder": [
        "DatasetSettings",
        "MomentRetrievalBuilder",
        "MomentRetrievalConfig",
        "get_dataset_settings",
        "load_moment_retrieval_dataset",
    ],
    "collator": ["DataCollatorForMomentRetrieval"],
    "ground_truth": ["ground_truth_records"],
    "labels": ["row_labels"],
    "layout": [
        "load_video_feature_types",
        "read_annotations",
        "write_annotations",
        "write_text_features",
        "write_video_features",
    ],
    "synthesis": ["VideoSynthesizer", "video_similarity"],
    "synthetic": ["SyntheticWorld", "ensure_synthetic_dataset", "write_synthetic_dataset"],
}

if TYPE_CHECKING:
    from .builder import (
        DatasetSettings,
        MomentRetrievalBuilder,
        MomentRetrievalConfig,
        get_dataset_settings,
        load_moment_retrieval_dataset,
    )
    from .collator import DataCollatorForMomentRetrieval
    from .ground_truth import ground_truth_records
    from .labels import row_labels
    from .layout import (
        load_video_feature_types,
        read_annotations,
        write_annotations,
        write_text_features,
        write_video_features,
    )
    from .synthesis import VideoSynthesizer, video_similarity
    from .synthetic import SyntheticWorld, ensure_synthetic_dataset, write_synthetic_dataset
else:
    import sys

    sys.modules[__name__] = _LazyModule(__name__, globals()["__file__"], _import_structure, module_spec=__spec__)
