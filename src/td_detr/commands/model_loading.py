"""Resolve what a user names as a model or config: a hub config name, a config.json, a saved model folder, or a Hub
repo id; with clear errors for anything that is not a td-detr model."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import TDDetrInputError


def _check_model_type(config_path: Path) -> None:
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError) as error:
        raise TDDetrInputError(f"{config_path}: not a readable config.json ({error})") from None
    if model_type != "td_detr":
        raise TDDetrInputError(f"{config_path}: model_type is {model_type!r}, not a td-detr model ('td_detr')")


def load_config_or_model(name: str):
    """Returns (TDDetrConfig, pretrained location or None)."""
    from ..configuration_td_detr import TDDetrConfig

    path = Path(name)
    if path.is_file():
        _check_model_type(path)
        return TDDetrConfig.from_json_file(str(path)), None
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise TDDetrInputError(f"{path} has no config.json: not a saved td-detr model")
        _check_model_type(config_path)
        config = TDDetrConfig.from_pretrained(str(path))
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

    try:
        config = TDDetrConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise TDDetrInputError(f"cannot load a td-detr model from {name_or_path!r}: {error}") from None
    if getattr(config, "model_type", None) != "td_detr":
        raise TDDetrInputError(f"{name_or_path!r} is a {config.model_type!r} model, not td-detr")
    return config


def load_model(name_or_path: str):
    """A TDDetrForMomentRetrieval from a folder or repo id, with clear errors for anything else."""
    from ..modeling_td_detr import TDDetrForMomentRetrieval

    config = load_pretrained_config(name_or_path)
    try:
        return TDDetrForMomentRetrieval.from_pretrained(name_or_path, config=config)
    except (OSError, ValueError) as error:
        raise TDDetrInputError(f"cannot load the weights of {name_or_path!r}: {error}") from None
