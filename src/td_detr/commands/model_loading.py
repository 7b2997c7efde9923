"""Resolve what a user names as a model or config: a hub config name, a config.json, a saved model folder, or a Hub
repo id; with clear errors for anything that is not a td-detr model."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub.errors import StrictDataclassError

from ..errors import TDDetrInputError


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
    return load_pretrained_config(name), name


def load_pretrained_config(name_or_path: str):
    """Config of a model folder or Hub repo id (from the cache when offline), with a clear error otherwise."""
    from ..configuration_td_detr import TDDetrConfig

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
