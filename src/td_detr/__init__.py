"""td-detr: TD-DETR (ICCV 2025) video moment retrieval and highlight detection on Hugging Face transformers.

Importing the package registers `td_detr` with `AutoConfig` and `AutoModel` (done where the classes are defined, so
importing :mod:`td_detr.modeling_td_detr` alone registers too). The `td-detr` command sets `TD_DETR_LAZY_IMPORT=1`,
which defers importing torch / transformers until a name is used, so `td-detr --help` and `td-detr score` start fast.
"""

from __future__ import annotations

import os

from .lazy_exports import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "TDDetrConfig": "configuration_td_detr",
    "TDDetrForMomentRetrieval": "modeling_td_detr",
    "TDDetrModel": "modeling_td_detr",
    "TDDetrModelOutput": "modeling_td_detr",
    "TDDetrMomentRetrievalOutput": "modeling_td_detr",
    "TDDetrPreTrainedModel": "modeling_td_detr",
    "TDDetrProcessor": "processing_td_detr",
    "post_process_moment_retrieval": "postprocessing",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__():
    return sorted(list(globals()) + __all__)


if os.environ.get("TD_DETR_LAZY_IMPORT") != "1":
    from .configuration_td_detr import TDDetrConfig  # noqa: E402
    from .modeling_td_detr import (  # noqa: E402
        TDDetrForMomentRetrieval,
        TDDetrModel,
        TDDetrModelOutput,
        TDDetrMomentRetrievalOutput,
        TDDetrPreTrainedModel,
    )
    from .postprocessing import post_process_moment_retrieval  # noqa: E402
