"""A training split's clip features kept on the device as one tensor (`td-detr train --features-on-device`).

Without it, every training batch reads its rows' ``[clips, D]`` features from the Arrow cache, pads them on the CPU
and copies them to the GPU. :class:`ResidentVideoFeatures` holds every video of the split once, zero-padded to the
longest, as one ``[V, L, D]`` tensor on the device (QVHighlights: ~7,200 videos × 75 × 2,818 fp32, about 6 GB); the
training collator then pads, scores pair similarity (Eq. 1) and gathers synthesized videos with device ops
(:class:`~td_detr.data.collator.DataCollatorForMomentRetrieval` with ``resident=``), while every random draw still
comes from the collator's CPU ``numpy`` generator: a batch on the GPU holds the same clips as on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import TDDetrInputError


class ResidentVideoFeatures:
    """``features`` [V, L, D] float32 on one device, zero after each video's ``lengths[v]`` clips; ``index[vid]`` is
    a video's row."""

    def __init__(self, features: torch.Tensor, lengths, vids: list[str]):
        lengths = np.asarray(lengths, dtype=np.int64)
        if features.ndim != 3 or len(features) != len(lengths) or len(vids) != len(lengths):
            raise ValueError(f"features [V, L, D], lengths [V] and vids [V] must agree: {tuple(features.shape)}, "
                             f"{len(lengths)}, {len(vids)}")
        self.features = features
        self.lengths = lengths
        self.index = {str(vid): i for i, vid in enumerate(vids)}

    @property
    def device(self) -> torch.device:
        return self.features.device

    @classmethod
    def from_arrays(cls, videos: dict, device="cpu") -> "ResidentVideoFeatures":
        """From ``{vid: [clips, D] array}``; each video is checked (non-empty, one width, finite) once here."""
        if not videos:
            raise TDDetrInputError("--features-on-device: the training split has no videos")
        vids = [str(vid) for vid in videos]
        arrays = [np.asarray(array, dtype=np.float32) for array in videos.values()]
        widths = {array.shape[1] for array in arrays if array.ndim == 2}
        bad = [vid for vid, array in zip(vids, arrays) if array.ndim != 2 or not len(array)]
        if bad or len(widths) != 1:
            raise TDDetrInputError(f"--features-on-device: videos {bad[:5]} are not non-empty [clips, dim] arrays"
                                   if bad else f"--features-on-device: feature widths differ: {sorted(widths)}")
        lengths = np.array([len(array) for array in arrays])
        features = torch.zeros((len(arrays), int(lengths.max()), widths.pop()), dtype=torch.float32, device=device)
        for row, array in enumerate(arrays):
            features[row, : len(array)] = torch.from_numpy(array).to(device, non_blocking=False)
        if not torch.isfinite(features).all():
            raise TDDetrInputError("--features-on-device: the training split's video features contain NaN or inf")
        return cls(features, lengths, vids)

    @classmethod
    def from_split(cls, split, device="cpu", chunk: int = 256) -> "ResidentVideoFeatures":
        """Every video of a training split loaded by :func:`~td_detr.data.load_moment_retrieval_dataset` (its
        :class:`~td_detr.data.video_table.VideoJoin` transform knows the video table and the train-split cut)."""
        join = split.format["format_kwargs"].get("transform")
        if not hasattr(join, "video_rows"):
            raise TDDetrInputError("--features-on-device needs a split read through td_detr's video table")
        vids = sorted(set(split.with_format(None)["vid"]))
        videos = {}
        for start in range(0, len(vids), chunk):
            part = vids[start : start + chunk]
            videos.update(zip(part, join.video_rows(part)))
        return cls.from_arrays(videos, device)

    def rows(self, vids) -> np.ndarray:
        """The store rows of ``vids``, int64."""
        try:
            return np.array([self.index[str(vid)] for vid in vids], dtype=np.int64)
        except KeyError as error:
            raise TDDetrInputError(f"vid {error.args[0]} is not among the resident training videos") from None

    def padded(self, rows: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """``[B, width, D]`` features of ``rows`` (zero-padded to the longest of them) and their lengths."""
        lengths = self.lengths[rows]
        index = torch.from_numpy(rows).to(self.device)
        return self.features.index_select(0, index)[:, : int(lengths.max())].contiguous(), lengths
