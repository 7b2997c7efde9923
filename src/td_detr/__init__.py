"""td-detr: TD-DETR (ICCV 2025) video moment retrieval and highlight detection on Hugging Face transformers.

Importing the package registers `td_detr` with `AutoConfig` and `AutoModel`.
"""

from transformers import AutoConfig, AutoModel

from .configuration_td_detr import TDDetrConfig
from .modeling_td_detr import (
    TDDetrForMomentRetrieval,
    TDDetrModel,
    TDDetrModelOutput,
    TDDetrMomentRetrievalOutput,
    TDDetrPreTrainedModel,
)
from .postprocessing import post_process_moment_retrieval

__version__ = "0.1.0"

AutoConfig.register(TDDetrConfig.model_type, TDDetrConfig, exist_ok=True)
AutoModel.register(TDDetrConfig, TDDetrModel, exist_ok=True)

__all__ = [
    "TDDetrConfig",
    "TDDetrForMomentRetrieval",
    "TDDetrModel",
    "TDDetrModelOutput",
    "TDDetrMomentRetrievalOutput",
    "TDDetrPreTrainedModel",
    "post_process_moment_retrieval",
]
