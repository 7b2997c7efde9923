"""Resolve what a user names as a model or config: a hub config name, a config.json, a saved model folder, or a Hub
repo id; with clear errors for anything that is not a td-detr model."""

from __future__ import annotations

import difflib
from pathlib import Path

from huggingface_hub.errors import StrictDataclassError

from ..errors import TDDetrInputError
from ..hub_access import looks_like_repo_id, require_hub


def _read_config(read, where: str):
    """``read()`` (a TDDetrConfig loader) with every way a config can be bad (unreadable, not JSON, another
    model_type, a wrongly typed or impossible value) turned into one line naming ``where``."""
    try:
        return read()
    except (OSError, ValueError, StrictDataclassError) as error:
        reason = " ".join(str(error).split())
        raise TDDetrInputError(f"cannot load a td-detr config from {where}: {reason}") from None


def load_config_or_model(name: str):
    """Returns (TDDetrConfig, pretrained location or None)."""
    from ..configuration_td_detr import TDDetrConfig

    path = Path(name)
    if path.is_file():
        return _read_config(lambda: TDDetrConfig.from_json_file(str(path)), str(path)), None
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise TDDetrInputError(f"{path} has no config.json: not a saved td-detr model")
        config = _read_config(lambda: TDDetrConfig.from_pretrained(str(path)), str(config_path))
        has_weights = any(path.glob("*.safetensors"))
        return config, (str(path) if has_weights else None)
    try:
        from ..hub import load_hub_config
    except ImportError:
        load_hub_config = None
    if load_hub_config is not None:
        try:
            return load_hub_config(name), None
        except (KeyError, FileNotFoundError, TDDetrInputError):
            pass
    if not looks_like_repo_id(name):  # a typo: answer from what is on disk, without touching the network
        from ..hub_presets import HUB_PRESETS

        close = difflib.get_close_matches(name, HUB_PRESETS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise TDDetrInputError(
            f"--config {name}: not a file, a folder, a known hub config or a Hub repo id (org/name); {hint}"
            f"known hub configs: {', '.join(sorted(HUB_PRESETS))}"
        )
    return load_pretrained_config(name, flag="--config"), name


def load_pretrained_config(name_or_path: str, flag: str = "--model"):
    """Config of a model folder or Hub repo id (from the cache when offline), with a clear error otherwise."""
    from ..configuration_td_detr import TDDetrConfig

    if not Path(name_or_path).exists():
        if not looks_like_repo_id(name_or_path):
            raise TDDetrInputError(
                f"cannot load a td-detr model from {flag} {name_or_path}: no such folder, and not a Hub repo id (org/name)"
            )
        require_hub(name_or_path, flag)
    return _read_config(lambda: TDDetrConfig.from_pretrained(name_or_path), repr(name_or_path))


def load_model(name_or_path: str):
    """A TDDetrForMomentRetrieval from a folder or repo id, with clear errors for anything else."""
    from ..modeling_td_detr import TDDetrForMomentRetrieval

    config = load_pretrained_config(name_or_path)
    try:
        return TDDetrForMomentRetrieval.from_pretrained(name_or_path, config=config)
    except TDDetrInputError:
        raise
    except (OSError, ValueError) as error:
        raise TDDetrInputError(f"cannot load the weights of {name_or_path!r}: {error}") from None
