"""Tiny data and configs shared by the training and command tests."""

from __future__ import annotations

import json
from pathlib import Path

TINY_MODEL = dict(
    hidden_size=16, num_attention_heads=2, ffn_dim=32, t2v_layers=1, encoder_layers=1, decoder_layers=2,
    num_queries=4, input_dropout=0.1,
)


def write_tiny_config(path: Path, **overrides) -> Path:
    from td_detr import TDDetrConfig

    TDDetrConfig(**{**TINY_MODEL, **overrides}).to_json_file(str(path))
    return path


def make_tiny_synthetic(folder: Path, size: int = 24) -> Path:
    from td_detr.data.synthetic import write_synthetic_dataset

    if not (folder / "dataset_info.json").exists():
        write_synthetic_dataset(folder, seed=0, size=size)
    return folder


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
