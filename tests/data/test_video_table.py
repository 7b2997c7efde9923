"""Each video's features are stored once in the datasets cache (a video table joined when rows are read), whatever
the number of queries per video; the joined rows are the video's prepared features (train rows cut)."""

from __future__ import annotations

import numpy as np
import torch

from td_detr.data import load_moment_retrieval_dataset
from td_detr.data.layout import write_annotations

VIDEOS, QUERIES_PER_VIDEO, CLIPS, WIDTHS = 3, 8, 60, (("slowfast_features", 64), ("clip_features", 32))
VIDEO_BYTES = CLIPS * sum(width for _, width in WIDTHS) * 4  # float32


def layout_with_shared_videos(root, make_records, write_features):
    """Train: 3 videos with 8 queries each; validation: a query on each of the first two videos."""
    records = make_records(VIDEOS * QUERIES_PER_VIDEO, duration=2.0 * CLIPS)
    for i, record in enumerate(records):
        record["vid"] = f"video{i % VIDEOS}"
    validation = [dict(records[0], qid=900), dict(records[1], qid=901)]
    write_annotations(root / "train.jsonl", records)
    write_annotations(root / "validation.jsonl", validation)
    write_features(root, records + validation, video_dims=WIDTHS, num_tokens=4)
    return {"train": str(root / "train.jsonl"), "validation": str(root / "validation.jsonl")}


def arrow_bytes(folder) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*.arrow"))


def test_the_cache_holds_one_copy_per_video(tmp_path, make_records, feature_writer):
    files = layout_with_shared_videos(tmp_path / "data", make_records, feature_writer)
    cache = tmp_path / "cache"
    splits = load_moment_retrieval_dataset("layout", data_dir=tmp_path / "data", cache_dir=cache,
                                           annotation_files=files, clip_length=2.0)
    assert splits["train"].num_rows == VIDEOS * QUERIES_PER_VIDEO
    stored = arrow_bytes(cache)
    # one copy per video plus small query rows; a copy per query would be 26 videos' worth
    assert VIDEOS * VIDEO_BYTES <= stored < 1.5 * VIDEOS * VIDEO_BYTES, stored
    videos = [path for path in cache.rglob("*.arrow") if "videos" in path.name]
    assert len(videos) == 1 and arrow_bytes(videos[0].parent) >= VIDEOS * VIDEO_BYTES


def test_joined_rows_are_the_prepared_video_features(tmp_path, make_records, feature_writer):
    files = layout_with_shared_videos(tmp_path / "data", make_records, feature_writer)
    splits = load_moment_retrieval_dataset("layout", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                                           annotation_files=files, clip_length=2.0, max_video_length=50)
    slowfast = np.load(tmp_path / "data" / "slowfast_features" / "video1.npz")["features"]
    train_row, validation_row = splits["train"][1], splits["validation"][1]
    assert train_row["vid"] == validation_row["vid"] == "video1"
    assert isinstance(train_row["video_features"], torch.Tensor)
    assert tuple(train_row["video_features"].shape) == (50, 96)  # the train split is cut to max_video_length
    assert tuple(validation_row["video_features"].shape) == (CLIPS, 96)  # evaluation rows never are
    expected = slowfast / (np.linalg.norm(slowfast, axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(validation_row["video_features"][:, :64].numpy(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(train_row["video_features"], validation_row["video_features"][:50])
    batch = splits["train"][:4]  # batched access joins every row
    assert [v.shape[0] for v in batch["video_features"]] == [50] * 4
