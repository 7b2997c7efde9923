"""Where a command runs: ``--device auto | cpu | cuda`` to ``"cuda"`` or ``"cpu"``, the one rule for `td-detr train`,
`evaluate`, `spurious-eval` and ``scripts/ablate.py``, and what ``--compile`` compiles (also for the GPU benchmark's
scripts; scripts do not import the command line)."""

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


def compile_model(model) -> None:
    """What ``--compile`` compiles (also the GPU benchmark's and the run cost's compiled variants): the encoder-decoder,
    in place (``nn.Module.compile``: weight names unchanged). Not the whole model, as the Trainer's ``torch_compile``
    would: the loss's Hungarian matching runs on the host, and its per-row label list, with a different number of
    windows in each row, would be a new guard every step."""
    model.model.compile()
