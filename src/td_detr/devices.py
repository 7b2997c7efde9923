"""Where a command runs: ``--device auto | cpu | cuda`` to ``"cuda"`` or ``"cpu"``, the one rule for `td-detr train`,
`evaluate`, `spurious-eval` and ``scripts/ablate.py`` (scripts do not import the command line)."""

from __future__ import annotations

from .errors import TDDetrInputError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(requested: str, cuda_available: bool | None = None) -> str:
    """``"cuda"`` or ``"cpu"`` for a ``--device`` value (one of :data:`DEVICES`): auto is CUDA when torch sees a GPU;
    cuda without one is a :class:`TDDetrInputError` (exit 2). The CPU needs no torch import."""
    if requested == "cpu":
        return "cpu"
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if requested == "cuda" and not cuda_available:
        raise TDDetrInputError("--device cuda: no CUDA GPU is visible to torch (torch.cuda.is_available() is False)")
    return "cuda" if requested == "cuda" or (requested == "auto" and cuda_available) else "cpu"
