"""Shared fixtures for tests/data: the real annotation files (vendored cuts) and tiny generated feature files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from td_detr.data.layout import write_annotations, write_text_features, write_video_features

from fixture_files import FIXTURES


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """tests/fixtures: the heads of the real QVHighlights and Charades-STA annotation files, in their usual folders."""
    return FIXTURES


def write_features(
    root,
    records,
    video_dims=(("slowfast_features", 8), ("clip_features", 4)),
    text_dim: int = 6,
    clip_length: float = 2.0,
    num_clips=None,
    num_tokens=None,
    text_folder: str = "clip_text_features",
    seed: int = 0,
) -> Path:
    """Write random feature files for ``records`` under ``root`` in the standard layout; returns ``root``.

    ``num_clips`` / ``num_tokens``: an int, a callable ``(record, folder) -> int`` / ``record -> int``, or None for
    ``ceil(duration / clip_length)`` clips and one token per query word plus 2. Each video is written once.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    written = set()
    for record in records:
        if record["vid"] not in written:
            written.add(record["vid"])
            for folder, dim in video_dims:
                if num_clips is None:
                    rows = math.ceil(record["duration"] / clip_length)
                else:
                    rows = num_clips(record, folder) if callable(num_clips) else num_clips
                write_video_features(root / folder, record["vid"], rng.standard_normal((rows, dim)))
        if num_tokens is None:
            tokens = len(record["query"].split()) + 2
        else:
            tokens = num_tokens(record) if callable(num_tokens) else num_tokens
        write_text_features(root / text_folder, record["qid"], rng.standard_normal((tokens, text_dim)))
    return root


@pytest.fixture
def feature_writer():
    """The :func:`write_features` helper, as a fixture."""
    return write_features


def tiny_records(n: int = 4, duration: float = 20.0) -> list[dict]:
    """``n`` valid QVHighlights-style records on 2-s clips, one video each."""
    records = []
    for i in range(n):
        records.append(
            {
                "qid": 100 + i,
                "query": f"a person does thing number {i}",
                "vid": f"vid{i:02d}_0.0_{duration}",
                "duration": duration,
                "relevant_windows": [[2.0, 6.0]] if i % 2 == 0 else [[0.0, 2.0], [10.0, 14.0]],
                "relevant_clip_ids": [1, 2] if i % 2 == 0 else [0, 5, 6],
                "saliency_scores": [[1, 2, 3], [4, 4, 4]] if i % 2 == 0 else [[0, 1, 2], [3, 3, 3], [2, 2, 2]],
            }
        )
    return records


@pytest.fixture
def tiny_layout(tmp_path):
    """A tiny data set in the standard layout: train (4 records) and validation (2) JSONL plus feature folders.

    Returns a dict with ``root``, ``files`` ({split: path}), ``records`` ({split: list}) and ``kwargs`` for the
    builder's ``layout`` config.
    """
    root = tmp_path / "tiny"
    records = {"train": tiny_records(4), "validation": tiny_records(2)}
    for i, record in enumerate(records["validation"]):
        record["qid"], record["vid"] = 200 + i, f"val{i:02d}"
    files = {}
    for split, split_records in records.items():
        files[split] = root / f"{split}.jsonl"
        write_annotations(files[split], split_records)
        write_features(root, split_records, seed=len(files))
    kwargs = {
        "annotation_files": {split: str(path) for split, path in files.items()},
        "clip_length": 2.0,
    }
    return {"root": root, "files": files, "records": records, "kwargs": kwargs}


@pytest.fixture
def make_records():
    """The :func:`tiny_records` helper, as a fixture."""
    return tiny_records
