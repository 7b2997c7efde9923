"""Checks on where a command will write, made before any work starts, so a bad output path is one line and exit 2
(not a traceback after minutes of work, and never an input overwritten by an output)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import TDDetrInputError


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(path: Path, flag: str) -> None:
    """The closest existing ancestor of ``path`` is a writable folder, so ``path`` can be created."""
    existing = _first_existing(path)
    if not existing.is_dir():
        raise TDDetrInputError(f"{flag} {path}: cannot be created, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TDDetrInputError(f"{flag} {path}: {existing} is not writable")


def check_writable_dir(path: str | os.PathLike, flag: str) -> Path:
    """``path`` is a writable folder, or can be created: its closest existing ancestor is a writable folder."""
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise TDDetrInputError(f"{flag} {path}: exists and is not a folder")
    _check_creatable(path, flag)
    return path


def check_writable_file(path: str | os.PathLike, flag: str) -> Path:
    """``path`` can be written as a file: not a folder, and writable itself (when it exists) or in its folder."""
    path = Path(path).absolute()
    if path.is_dir():
        raise TDDetrInputError(f"{flag} {path}: is a folder, expected a file name")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise TDDetrInputError(f"{flag} {path}: is not writable")
        return path
    _check_creatable(path, flag)
    return path


def check_not_an_input(output: str | os.PathLike, flag: str, inputs: dict) -> None:
    """``output`` is none of the ``inputs`` ({flag: path}; None entries are skipped)."""
    out = Path(output).absolute().resolve()
    for input_flag, path in inputs.items():
        if path is None:
            continue
        source = Path(path).absolute().resolve()
        if out == source:
            raise TDDetrInputError(f"{flag} {output} is the same path as {input_flag}: it would be overwritten; "
                                   f"choose another {flag}")


def check_not_a_model_folder(path: str | os.PathLike, flag: str) -> None:
    """``path`` is not a saved model or run folder, whose metrics / predictions an evaluation would replace."""
    path = Path(path)
    held = [name for name in ("run.json", "config.json", "model.safetensors") if (path / name).is_file()]
    if held:
        raise TDDetrInputError(
            f"{flag} {path} holds a saved model ({', '.join(held)}): writing there would replace its metrics.json / "
            f"predictions.jsonl; choose another folder, e.g. {path / 'eval'}"
        )
