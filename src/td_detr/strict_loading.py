"""Strict loading of saved td-detr weights.

transformers' `from_pretrained` fills a missing tensor with random values, drops unexpected ones and only logs a
report, so a damaged or foreign checkpoint gives a model that runs and predicts nonsense. A td-detr checkpoint must
match the model exactly: a missing, unexpected or wrongly shaped tensor, or a ``model.safetensors`` that is empty,
truncated or not safetensors at all, is a :class:`~td_detr.errors.TDDetrInputError` naming the folder and tensors.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .errors import TDDetrInputError

_SHOWN = 3  # tensor names listed per problem


def check_safetensors(path: str | Path) -> list[str]:
    """The tensor names of a safetensors file; a file that cannot be read as one is an error naming it."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError) as error:
        raise TDDetrInputError(f"{path}: not a readable safetensors file ({error}): it is empty, truncated or "
                               "damaged; save the model again") from None


def _listed(names) -> str:
    names = sorted(str(name if isinstance(name, str) else name[0]) for name in names)
    more = f", ... ({len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _not_a_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in str(record.msg)


@contextlib.contextmanager
def _without_load_report():
    # The problems the report lists become our error message; keep the multi-line table off the console. (A filter,
    # not a higher level: transformers runs extra checks, with warnings of their own, when that logger's level rises.)
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(_not_a_load_report)
    try:
        yield
    finally:
        logger.removeFilter(_not_a_load_report)


def from_pretrained_strictly(load, name_or_path, *args, **kwargs):
    """Call transformers' ``load`` (a bound ``from_pretrained``) and refuse any mismatch between checkpoint and
    model. ``ignore_mismatched_sizes=True`` still allows re-initialising wrongly shaped tensors on purpose."""
    want_info = kwargs.pop("output_loading_info", False)
    allow_mismatched = kwargs.pop("ignore_mismatched_sizes", False)
    with _without_load_report():
        try:
            model, info = load(name_or_path, *args, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
        except SafetensorError as error:
            raise TDDetrInputError(f"{name_or_path}: the weights are not a readable safetensors file ({error}): "
                                   "empty, truncated or damaged; save the model again") from None
    problems = []
    if info["missing_keys"]:
        problems.append(f"{len(info['missing_keys'])} tensor(s) missing: {_listed(info['missing_keys'])}")
    if info["unexpected_keys"]:
        problems.append(f"{len(info['unexpected_keys'])} unexpected: {_listed(info['unexpected_keys'])}")
    if info["mismatched_keys"] and not allow_mismatched:
        problems.append(f"{len(info['mismatched_keys'])} of another shape than config.json says: "
                        f"{_listed(info['mismatched_keys'])}")
    if problems:
        raise TDDetrInputError(f"{name_or_path}: the weights do not match the model ({'; '.join(problems)})")
    return (model, info) if want_info else model
