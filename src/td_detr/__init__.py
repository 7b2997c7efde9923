"""td-detr: TD-DETR (ICCV 2025) video moment retrieval and highlight detection on Hugging Face transformers.

The package is a transformers `_LazyModule`: a name below is imported on first use, so `import td_detr.metrics`,
`import td_detr.data.layout` and `td-detr --help` never load torch. `import td_detr` registers the model type
`td_detr` with `AutoConfig` / `AutoModel` (see :mod:`td_detr.auto_registration`); `AutoModel` gives the head-less
`TDDetrModel`, `td_detr.AutoModelForMomentRetrieval` the model with its head (use it to load a trained model).
"""

from importlib.metadata import version
from typing import TYPE_CHECKING

from transformers.utils.import_utils import _LazyModule

from .auto_registration import register_with_auto_classes

__version__ = version("td-detr")  # pyproject.toml is the one place the version is written

_import_structure = {
    "configuration_td_detr": ["TDDetrConfig"],
    "modeling_auto": ["AutoModelForMomentRetrieval"],
    "modeling_td_detr": [
        "TDDetrForMomentRetrieval",
        "TDDetrModel",
        "TDDetrModelOutput",
        "TDDetrMomentRetrievalOutput",
        "TDDetrPreTrainedModel",
    ],
    "postprocessing": ["post_process_moment_retrieval"],
    "processing_td_detr": ["TDDetrProcessor"],
}

if TYPE_CHECKING:
    from .configuration_td_detr import TDDetrConfig
    from .modeling_auto import AutoModelForMomentRetrieval
    from .modeling_td_detr import (
        TDDetrForMomentRetrieval,
        TDDetrModel,
        TDDetrModelOutput,
        TDDetrMomentRetrievalOutput,
        TDDetrPreTrainedModel,
    )
    from .postprocessing import post_process_moment_retrieval
    from .processing_td_detr import TDDetrProcessor
else:
    import sys

    sys.modules[__name__] = _LazyModule(
        __name__, globals()["__file__"], _import_structure, module_spec=__spec__,
        extra_objects={"__version__": __version__},
    )
    register_with_auto_classes()
