"""Each video's features stored once: the query rows of a data set point at a video table by ``vid`` and the two are
joined when rows are read.

A query row used to carry its video's ``[clips, D]`` features, so the ``datasets`` cache grew with queries, not
videos (QVHighlights: 10,310 queries over 10,148 videos; Charades-STA ~2.4 queries per video; TACoS-style sets over a
hundred). :class:`VideoJoin` is the split's ``datasets`` transform: it adds ``video_features`` (the train split's cut
to ``max_video_length``, as the official loader does; every other split whole) and formats the two feature columns
as torch tensors, NumPy arrays or Python lists. Every other column stays a plain Python value. With
``include_video=False`` (:meth:`VideoJoin.without_video`) rows carry no video features: the training collator reads
them from a store resident on the device (:mod:`.resident`).
"""

from __future__ import annotations

import numpy as np


class VideoJoin:
    """``dataset.with_transform(VideoJoin(videos, ...))``: ``videos`` is the table (``vid``, ``video_features``)."""

    def __init__(self, videos, max_video_length: int | None = None, format: str | None = "torch",
                 include_video: bool = True):
        self.table = videos
        self.videos = videos.with_format("numpy", columns=["video_features"])
        self.position = {vid: i for i, vid in enumerate(videos["vid"])}
        self.max_video_length = max_video_length
        self.format = format
        self.include_video = include_video

    def without_video(self) -> "VideoJoin":
        """The same join adding no ``video_features`` (rows of a split whose videos are resident on the device)."""
        return VideoJoin(self.table, self.max_video_length, self.format, include_video=False)

    def video_rows(self, vids: list[str]) -> list[np.ndarray]:
        """The float32 ``[clips, D]`` features of ``vids`` as this join gives them (cut to ``max_video_length``)."""
        videos = self.videos[[self.position[vid] for vid in vids]]["video_features"]
        return [np.asarray(video, dtype=np.float32)[: self.max_video_length] for video in videos]

    def _convert(self, array: np.ndarray):
        array = np.ascontiguousarray(array, dtype=np.float32)
        if self.format == "torch":
            import torch

            return torch.from_numpy(array)
        return array.tolist() if self.format is None else array

    def __call__(self, batch: dict) -> dict:
        if self.include_video:
            batch["video_features"] = [self._convert(video) for video in self.video_rows(batch["vid"])]
        batch["text_features"] = [self._convert(np.asarray(text, dtype=np.float32)) for text in batch["text_features"]]
        return batch
