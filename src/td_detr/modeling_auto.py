"""`AutoModelForMomentRetrieval`: the auto class of models with a moment-retrieval head, built with transformers'
own auto-class machinery (as `AutoModelForObjectDetection` is).

`AutoModel` maps a TD-DETR config to the head-less `TDDetrModel` (transformers' convention for `AutoModel`); loading
a trained checkpoint with it drops the head. This class maps it to `TDDetrForMomentRetrieval`. Importing this module
(or `td_detr`) registers TD-DETR with it.
"""

from __future__ import annotations

from collections import OrderedDict

from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping, auto_class_update
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from .configuration_td_detr import TDDetrConfig
from .modeling_td_detr import TDDetrForMomentRetrieval

# No transformers model has this head: the mapping starts empty and holds what `register` adds.
MODEL_FOR_MOMENT_RETRIEVAL_MAPPING = _LazyAutoMapping(CONFIG_MAPPING_NAMES, OrderedDict())


class AutoModelForMomentRetrieval(_BaseAutoModelClass):
    _model_mapping = MODEL_FOR_MOMENT_RETRIEVAL_MAPPING


AutoModelForMomentRetrieval = auto_class_update(
    AutoModelForMomentRetrieval, checkpoint_for_example="td-detr-runs/synthetic", head_doc="video moment retrieval"
)
AutoModelForMomentRetrieval.register(TDDetrConfig, TDDetrForMomentRetrieval, exist_ok=True)

__all__ = ["AutoModelForMomentRetrieval", "MODEL_FOR_MOMENT_RETRIEVAL_MAPPING"]
