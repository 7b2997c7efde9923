"""Official checkpoint → td-detr model folder (safetensors weights, config.json, README.md model card)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TDDetrInputError
from ..output_paths import check_writable_dir
from .checkpoint import load_official_checkpoint, read_options_json, split_checkpoint
from .model_card import render_model_card
from .options import build_config, check_source, check_supported, resolve_official_options
from .weights import OfficialLayout, convert_official_state_dict, inspect_official_state_dict


@dataclass
class ConvertedCheckpoint:
    """Result of [`convert_official_checkpoint`]: the model (eval mode) and what the conversion decided."""

    model: object
    layout: OfficialLayout
    source: str
    dropped: list[str] = field(default_factory=list)
    defaulted_options: list[str] = field(default_factory=list)
    model_card: str = ""
    output_dir: Path | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_official_checkpoint(
    checkpoint_path: str | Path,
    source: str,
    options_path: str | Path | None = None,
    output_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
) -> ConvertedCheckpoint:
    """Convert an official QD-DETR (`source="qd-detr"`) or TD-DETR (`source="td-detr-official"`) checkpoint.

    Args:
        checkpoint_path: the official `.ckpt` (a torch pickle with `model` and `opt`), loaded without running code.
        source: `"qd-detr"` or `"td-detr-official"`.
        options_path: an official `opt.json`; its values override the checkpoint's own `opt` (needed when the
            checkpoint holds no options).
        output_dir: when given, write `model.safetensors`, `config.json` and `README.md` there; it must be empty or
            absent unless `overwrite` (checked before the checkpoint is read).

    Raises:
        TDDetrInputError: unreadable or unsafe file, unsupported settings, or weights that do not map one to one.
    """
    from ..modeling_td_detr import TDDetrForMomentRetrieval  # torch-heavy; keep module import light

    source = check_source(source)
    if output_dir is not None:
        output_dir = check_writable_dir(output_dir, "--output-dir")
        if not overwrite and output_dir.is_dir() and any(output_dir.iterdir()):
            raise TDDetrInputError(f"--output-dir {output_dir} is not empty: pass --overwrite to write the converted "
                                   "model into it, or choose another folder")
    checkpoint_path = Path(checkpoint_path)
    where = str(checkpoint_path)
    checkpoint = load_official_checkpoint(checkpoint_path)
    state, options = split_checkpoint(checkpoint, checkpoint_path)
    if options_path is not None:
        options = {**(options or {}), **read_options_json(options_path)}
    if options is None:
        raise TDDetrInputError(f"{where}: the checkpoint holds no training options ('opt'); pass the run's "
                               "opt.json with --opt")
    options, defaulted = resolve_official_options(options, source)
    check_supported(options, source, where)
    layout = inspect_official_state_dict(state, options, source, where)
    config = build_config(options, source, layout.video_feature_size, layout.text_width, layout.t2v_layers)

    model = TDDetrForMomentRetrieval(config)
    expected = {name: tensor.shape for name, tensor in model.state_dict().items()}
    converted, dropped = convert_official_state_dict(state, expected, layout, where)
    model.load_state_dict(converted, strict=True)  # every parameter checked above; strict guards the invariant
    model.eval()

    epoch = checkpoint.get("epoch") if isinstance(checkpoint.get("epoch"), int) else None
    card = render_model_card(
        source=source, checkpoint_name=checkpoint_path.name, checkpoint_sha256=_sha256(checkpoint_path),
        epoch=epoch, config=config, layout=layout, dropped=dropped, defaulted=defaulted,
        options_file=Path(options_path).name if options_path is not None else None,
    )
    result = ConvertedCheckpoint(model, layout, source, dropped, defaulted, card)
    if output_dir is not None:
        model.save_pretrained(output_dir)
        (output_dir / "README.md").write_text(card)
        result.output_dir = output_dir
    return result
