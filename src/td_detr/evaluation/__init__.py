"""Evaluation helpers. :mod:`.spurious` builds the spurious-correlation evaluation splits (masked moments, dynamic
context) from a data set in the standard layout."""

from .spurious import (
    choose_context_videos,
    dynamic_context,
    mask_moment,
    moment_mask,
    write_dynamic_context_split,
    write_masked_split,
)

__all__ = [
    "choose_context_videos",
    "dynamic_context",
    "mask_moment",
    "moment_mask",
    "write_dynamic_context_split",
    "write_masked_split",
]
