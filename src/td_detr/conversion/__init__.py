"""Convert released QD-DETR checkpoints and official TD-DETR checkpoints into td-detr models (issue #8).

    from td_detr.conversion import convert_official_checkpoint
    result = convert_official_checkpoint("model_best.ckpt", "qd-detr", output_dir="qd-detr-qvhighlights")

QD-DETR weights run in our baseline mode (`use_dynamics=False`); official TD-DETR weights run with the dynamics
settings the official code computes (`dynamics_with_position=True`, `dynamics_fusion="residual"`).
"""

from .checkpoint import load_official_checkpoint, read_options_json, split_checkpoint
from .converter import ConvertedCheckpoint, convert_official_checkpoint
from .options import SOURCES, build_config, resolve_official_options
from .weights import (
    KNOWN_UNUSED_OFFICIAL_TENSORS,
    OfficialLayout,
    convert_official_state_dict,
    inspect_official_state_dict,
    official_name,
)

__all__ = [
    "KNOWN_UNUSED_OFFICIAL_TENSORS",
    "SOURCES",
    "ConvertedCheckpoint",
    "OfficialLayout",
    "build_config",
    "convert_official_checkpoint",
    "convert_official_state_dict",
    "inspect_official_state_dict",
    "load_official_checkpoint",
    "official_name",
    "read_options_json",
    "resolve_official_options",
    "split_checkpoint",
]
