"""Read official QD-DETR / TD-DETR checkpoints without executing pickled code.

The official training scripts save `{"model": state_dict, "optimizer": ..., "lr_scheduler": ..., "epoch": int,
"opt": argparse.Namespace}` with `torch.save`. Such a file is a pickle, and an ordinary unpickle can run any code the
file names. We load it with `torch.load(weights_only=True)`, which only rebuilds tensors, containers and primitives,
plus the few harmless classes the official files need: the options `argparse.Namespace`, and numpy scalars / dtypes
in case an option was a numpy number. `torch.device` (the options' `device`) is allowed by PyTorch itself. Anything
else is refused with a `TDDetrInputError` naming the global.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from ..errors import TDDetrInputError


def _numpy_globals() -> list:
    """numpy scalar reconstruction and dtypes, under their numpy 2 and numpy 1 pickle names."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed: list = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype]
    for kind in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.float16, np.float32, np.float64):
        allowed.append(type(np.dtype(kind)))
    return allowed


def allowed_globals() -> list:
    """The globals (beyond PyTorch's own weights-only set) an official checkpoint may name."""
    return [argparse.Namespace, *_numpy_globals()]


def _allowed_names() -> set[str]:
    names = set()
    for entry in allowed_globals():
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f"{entry.__module__}.{entry.__qualname__}")
    return names


def _refuse(path: Path, offending) -> TDDetrInputError:
    return TDDetrInputError(
        f"{path}: refusing to unpickle global(s) {', '.join(sorted(set(offending)))}: an official QD-DETR / TD-DETR "
        "checkpoint only needs tensors, containers, argparse.Namespace options and numpy scalars; loading other "
        "classes could run arbitrary code"
    )


def load_official_checkpoint(path: str | Path) -> dict:
    """Load an official checkpoint (or a bare state dict) safely. Returns the unpickled top-level dict."""
    path = Path(path)
    if not path.is_file():
        raise TDDetrInputError(f"{path}: checkpoint file not found")
    # Zip-format checkpoints (torch >= 1.6) can be scanned for globals before anything is built.
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if scan is not None:
        try:
            offending = [name for name in scan(path) if name not in _allowed_names()]
        except ValueError:
            offending = []  # legacy (pre-zip) format: the weights-only unpickler below still guards it
        except Exception as error:  # noqa: BLE001 - any failure here means "not a torch checkpoint"
            raise TDDetrInputError(f"{path}: not a readable PyTorch checkpoint ({error})") from error
        if offending:
            raise _refuse(path, offending)
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch 2.4: process-wide allow-list only, without alias names
        torch.serialization.add_safe_globals([entry for entry in allowed_globals() if not isinstance(entry, tuple)])
    context = safe_globals(allowed_globals()) if safe_globals is not None else nullcontext()
    try:
        with context:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        names = re.findall(r"Unsupported global: GLOBAL (\S+)", str(error))
        if names:
            raise _refuse(path, names) from None
        raise TDDetrInputError(f"{path}: cannot be loaded safely ({str(error).splitlines()[0]})") from None
    except Exception as error:  # noqa: BLE001 - a corrupt pickle fails in many ways (EOFError, IndexError, ...)
        raise TDDetrInputError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(loaded, Mapping):
        raise TDDetrInputError(f"{path}: expected a dict (with a 'model' state dict), got {type(loaded).__name__}")
    return dict(loaded)


def split_checkpoint(checkpoint: Mapping, path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state dict, options dict or None) of a loaded checkpoint. Accepts `{"model": ..., "opt": ...}` or a bare
    state dict; strips a `module.` prefix left by DataParallel."""
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, Mapping) or not state:
        raise TDDetrInputError(f"{path}: no 'model' state dict in the checkpoint")
    bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise TDDetrInputError(f"{path}: the 'model' entry is not a state dict (non-tensor entries: {bad[:5]})")
    state = {str(key): value for key, value in state.items()}
    if all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    options = checkpoint.get("opt") if "model" in checkpoint else None
    if isinstance(options, argparse.Namespace):
        options = vars(options)
    if options is not None and not isinstance(options, Mapping):
        raise TDDetrInputError(f"{path}: 'opt' is a {type(options).__name__}, expected the training options")
    return state, (dict(options) if options is not None else None)


def read_options_json(path: str | Path) -> dict:
    """The `opt.json` an official run writes next to its checkpoint."""
    path = Path(path)
    try:
        options = json.loads(path.read_text())
    except FileNotFoundError:
        raise TDDetrInputError(f"{path}: options file not found") from None
    except json.JSONDecodeError as error:
        raise TDDetrInputError(f"{path}, line {error.lineno}: invalid JSON ({error.msg})") from None
    if not isinstance(options, dict):
        raise TDDetrInputError(f"{path}: expected a JSON object of training options")
    return options
