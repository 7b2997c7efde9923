"""The spurious-correlation evaluation (paper Fig. 1, S4.2): :mod:`.splits` builds the derived splits (masked moments,
dynamic context) from a data set in the standard layout; :mod:`.report` evaluates a model on them."""

from .splits import (
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
