"""``DataCollatorForMomentRetrieval``: dataset rows → a model batch (interfaces.md "A model batch").

Rows hold model-ready features (prepared by :class:`~td_detr.processing_td_detr.TDDetrProcessor`, which the builder
uses); the collator's processor pads them. Evaluation collators pad and label; a video longer than the processor's
``max_video_length`` becomes several half-overlapping rows (its ``meta`` entry lists their first clips in
``window_starts``; such a batch has no labels), or is refused when the processor says ``long_video="refuse"``.
Training collators run the video synthesizer (:mod:`.synthesis`) on the batch, so a training step sees originals and synthesized videos side by side
(how many: see :meth:`.synthesis.VideoSynthesizer.compose`: 2·B synthesized samples with the defaults, about
1.5·B with the official ``synthesis_keep_originals``).

Randomness (window subsets, saliency easy pairs, the synthesizer) comes from a ``numpy.random.Generator``:

* a fresh generator per call, seeded with ``seed`` and the batch's ordered qids/vids (and, in training, a salt
  that separates training from evaluation draws). The draws therefore depend only on the batch itself, not on how
  many batches came before: a run resumed from a checkpoint (which skips the batches already seen without collating
  them) synthesizes exactly what an uninterrupted run would, and DataLoader workers need no seeding. Shuffling
  makes the same ordered batch recur with negligible probability, so epochs still see fresh synthesis.
  (QD-DETR draws labels with the unseeded ``random``.)
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..configuration_td_detr import TDDetrConfig
from ..errors import TDDetrInputError
from ..processing_td_detr import TDDetrProcessor, length_mask, pad_rows
from .labels import row_labels
from .layout import WINDOW_TOLERANCE
from .negatives import choose_negatives, negative_eligibility
from .synthesis import BatchComposition, VideoSynthesizer, moment_blocks, remap_moment

# Fields read by name from a config object (TDDetrConfig or anything with these attributes).
CONFIG_FIELDS = (
    "clip_length",
    "max_video_length",
    "max_query_length",
    "max_windows",
    "synthesis_pairing",
    "synthesis_alpha",
    "synthesis_length_jitter",
    "synthesis_sampling",
    "synthesis_keep_originals",
    "synthesis_similarity",
    "synthesis_part_order",
    "synthesis_cap_length",
    "synthesis_anchor_fraction",
    "pseudo_label_clip",
)
_ROW_FIELDS = ("qid", "vid", "duration", "video_features", "text_features")
_RESIDENT_ROW_FIELDS = ("qid", "vid", "duration", "text_features")  # the video lives in the resident store


def _to_numpy(value, dtype) -> np.ndarray:
    """Numpy view of a row value given as a numpy array, a torch tensor or (nested) Python lists."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _scalar(value):
    return value.item() if isinstance(value, (torch.Tensor, np.generic, np.ndarray)) else value


@dataclass
class _Rows:
    """A batch of rows as plain numpy/python columns."""

    qid: list
    vid: list
    query: list
    duration: np.ndarray
    video: list
    text: list
    windows: list
    clip_ids: list
    scores: list


def _parse_rows(rows, max_query_length, resident_videos: bool = False) -> _Rows:
    """``resident_videos``: the rows' videos come from a resident store (checked when it was built): their
    ``video_features`` are neither needed nor read, ``_Rows.video`` holds None."""
    if not rows:
        raise TDDetrInputError("cannot collate an empty batch")
    columns = _Rows([], [], [], np.zeros(len(rows)), [], [], [], [], [])
    for i, row in enumerate(rows):
        for name in _RESIDENT_ROW_FIELDS if resident_videos else _ROW_FIELDS:
            if name not in row:
                raise TDDetrInputError(f"batch row {i} (qid {_scalar(row.get('qid'))}): missing field '{name}'")
        qid = _scalar(row["qid"])
        video = None if resident_videos else _to_numpy(row["video_features"], np.float32)
        text = _to_numpy(row["text_features"], np.float32)
        if video is not None and (video.ndim != 2 or video.shape[0] == 0):
            raise TDDetrInputError(f"qid {qid}: video_features is not a non-empty [clips, dim] array ({video.shape})")
        if text.ndim != 2 or text.shape[0] == 0:
            raise TDDetrInputError(f"qid {qid}: text_features is not a non-empty [tokens, dim] array ({text.shape})")
        for name, array in (("video_features", video), ("text_features", text)):
            if array is not None and not np.isfinite(array).all():
                raise TDDetrInputError(f"qid {qid}: {name} contain NaN or inf")
        duration = float(_scalar(row["duration"]))
        if not (math.isfinite(duration) and duration > 0):
            raise TDDetrInputError(f"qid {qid}: duration must be a positive number of seconds, got {duration}")
        windows = _to_numpy(row.get("relevant_windows", []), np.float64)
        if windows.size and (windows.ndim != 2 or windows.shape[1] != 2 or not np.isfinite(windows).all()
                             or (windows[:, 0] >= windows[:, 1]).any()):
            raise TDDetrInputError(f"qid {qid}: relevant_windows must be [start, end] pairs with start < end")
        if windows.size and ((windows[:, 0] < 0).any() or (windows[:, 1] > duration + WINDOW_TOLERANCE).any()):
            raise TDDetrInputError(f"qid {qid}: relevant_windows {windows.tolist()} lie outside the video "
                                   f"[0, {duration}]")
        clip_ids = _to_numpy(row.get("relevant_clip_ids", []), np.int64).reshape(-1)
        scores = _to_numpy(row.get("saliency_scores", []), np.float64)
        if len(clip_ids) and (scores.ndim != 2 or len(scores) != len(clip_ids)):
            raise TDDetrInputError(f"qid {qid}: saliency_scores needs one [a1, a2, a3] entry per relevant clip id")
        columns.qid.append(qid)
        columns.vid.append(str(_scalar(row["vid"])))
        columns.query.append(_scalar(row.get("query", "")))
        columns.duration[i] = duration
        columns.video.append(video)
        columns.text.append(text if max_query_length is None else text[:max_query_length])
        columns.windows.append(windows.reshape(-1, 2))
        columns.clip_ids.append(clip_ids)
        columns.scores.append(scores.reshape(len(clip_ids), -1) if len(clip_ids) else np.zeros((0, 3)))
    for name, arrays in (("video_features", columns.video), ("text_features", columns.text)):
        widths = {a.shape[1] for a in arrays if a is not None}
        if len(widths) > 1:
            raise TDDetrInputError(f"{name} widths differ within the batch: {sorted(widths)} (qids {columns.qid})")
    return columns


class DataCollatorForMomentRetrieval:
    """Pads rows into a model batch, derives labels and, in training, synthesizes dynamic-context videos.

    Returns ``video_features`` [B', L, Dv], ``video_mask`` [B', L], ``text_features`` [B', T, Dt], ``text_mask``
    [B', T] (float tensors, 1 = valid), ``labels`` (a list of B' dicts, only when every row has a window; rows with
    and without windows in one batch are an error), with labels ``negative_text_index`` (int64 [B']: the row whose
    query is each row's negative pair, -1 for none; see :mod:`.negatives`) and ``meta`` (a list of B' dicts: qid, vid, query, duration,
    clip_length, relevant_windows in seconds, synthetic; synthesized samples also carry context_qid, context_vid,
    source_duration, source_relevant_windows and moment_shift in seconds). B' = B in evaluation.

    Args:
        training: run the synthesizer (never in evaluation).
        config: a :class:`~td_detr.TDDetrConfig` (default: ``TDDetrConfig()``) supplying every setting below; the
            collator's settings *are* that config's fields (:data:`CONFIG_FIELDS`), validated once by it.
        seed: seed of the generator (module docstring).
        processor: the model's :class:`~td_detr.processing_td_detr.TDDetrProcessor`; when given, ``clip_length``,
            ``max_video_length`` and ``max_query_length`` are taken from it, otherwise it is made from them.
        settings: :data:`CONFIG_FIELDS` keywords overriding ``config`` (the synthesis ones matter only when
            ``training``):
        clip_length: seconds per clip; span labels divide windows by ``ctx_l * clip_length``.
        max_video_length: cap on synthesized lengths when ``synthesis_cap_length`` (training rows are padded, never
            cut: the builder cuts the train split); evaluation cuts longer videos into windows of this many clips.
        max_query_length: text tokens kept per row (None: all).
        max_windows: windows kept per query in the labels, a random subset when there are more.
        synthesis_pairing, synthesis_alpha, synthesis_length_jitter, synthesis_sampling, synthesis_keep_originals,
        synthesis_similarity: see :class:`.synthesis.VideoSynthesizer` (pairing, alpha, length_jitter, ...).
        synthesis_part_order: ``"pair"`` (official), ``"moment_first"`` or ``"random"``.
        synthesis_cap_length: cut synthesized videos to ``max_video_length`` (paper, default) or not (official).
        synthesis_anchor_fraction: share of rows made anchors when originals are kept (official ≈ 0.5).
        pseudo_label_clip: seconds → clips for Charades-style saliency labels of rows without saliency scores:
            ``"clip_length"`` (default; official TD-DETR, and consistent with the span labels) or ``"duration"``
            (``duration / ctx_l``, CG-DETR).
        resident: a :class:`~.resident.ResidentVideoFeatures` holding every training video on a device (training
            only): rows need no ``video_features``, and padding, similarity and the synthesized videos' gather run on
            its device (the returned ``video_features`` lie there; masks, text and labels stay on the CPU). The
            random draws are the same as without it, so the batch holds the same clips.
    """

    def __init__(self, training: bool = False, config=None, seed: int = 0, processor: TDDetrProcessor | None = None,
                 resident=None, **settings):
        unknown = sorted(set(settings) - set(CONFIG_FIELDS))
        if unknown:
            raise TDDetrInputError(f"unknown collator setting(s) {unknown}; the settings are TDDetrConfig fields "
                                   f"{', '.join(CONFIG_FIELDS)}")
        values = {name: getattr(config, name) for name in CONFIG_FIELDS if hasattr(config, name)}
        values.update(settings)
        if processor is not None:
            values.update(clip_length=processor.clip_length, max_video_length=processor.max_video_length,
                          max_query_length=processor.max_query_length)
        self.config = TDDetrConfig(**values)  # the defaults and the one validation of these settings
        for name in CONFIG_FIELDS:
            setattr(self, name, getattr(self.config, name))
        self.training, self.seed = bool(training), seed
        if resident is not None and not self.training:
            raise ValueError("resident features serve the training collator only")
        self.resident = resident
        self.processor = processor or TDDetrProcessor(
            clip_length=self.clip_length, max_video_length=self.max_video_length, max_query_length=self.max_query_length,
        )
        pairs = self.training and self.synthesis_pairing != "none"
        self.synthesizer = VideoSynthesizer.from_config(self.config) if pairs else None

    @classmethod
    def from_config(cls, config, training: bool, seed: int = 0, **overrides) -> "DataCollatorForMomentRetrieval":
        """The collator of a :class:`~td_detr.TDDetrConfig` (or any object with some :data:`CONFIG_FIELDS`
        attributes); ``overrides``: settings or a ``processor``."""
        return cls(training=training, config=config, seed=seed, **overrides)

    def __repr__(self) -> str:
        return f"DataCollatorForMomentRetrieval(training={self.training}, seed={self.seed}, config={self.config!r})"

    # -- randomness -------------------------------------------------------------------------------------------------

    def _rng(self, rows: _Rows) -> np.random.Generator:
        key = zlib.crc32(",".join(f"{q}:{v}" for q, v in zip(rows.qid, rows.vid)).encode())
        return np.random.default_rng([self.seed, key, 1 if self.training else 0])

    # -- collation --------------------------------------------------------------------------------------------------

    def __call__(self, rows) -> dict:
        columns = _parse_rows(rows, self.max_query_length, resident_videos=self.resident is not None)
        if not self.training:
            starts = []
            for qid, video in zip(columns.qid, columns.video):
                try:
                    starts.append(self.processor.window_starts(len(video)))
                except TDDetrInputError as error:
                    raise TDDetrInputError(f"qid {qid}: {error}") from None
            if max(len(s) for s in starts) > 1:
                return self._windowed_batch(columns)
        rng = self._rng(columns)
        has_windows = np.array([len(w) > 0 for w in columns.windows])
        if has_windows.any() and not has_windows.all():
            missing = [q for q, h in zip(columns.qid, has_windows) if not h]
            raise TDDetrInputError(f"some rows have relevant_windows and some do not (none for qids {missing})")
        with_labels = bool(has_windows.all())

        B = len(columns.qid)
        if self.resident is not None:
            padded, lengths = self.resident.padded(self.resident.rows(columns.vid))
            video_flat = torch.cat([padded.reshape(-1, padded.shape[2]), padded.new_zeros(1, padded.shape[2])])
        else:
            video_flat, lengths = pad_rows(columns.video, extra_rows=1)  # the extra zero row is the padding source
            width = int(lengths.max())
            padded = video_flat[: B * width].reshape(B, width, -1)

        if self.synthesizer is not None and with_labels and B >= 2:
            composition, moments = self._compose(columns, padded, lengths, rng)
            index = composition.source_index
            if self.resident is not None:
                flat_index = torch.from_numpy(index.ravel()).to(video_flat.device)
                video = video_flat.index_select(0, flat_index).reshape(*index.shape, video_flat.shape[1])
            else:
                video = np.take(video_flat, index.ravel(), axis=0).reshape(*index.shape, video_flat.shape[1])
        else:
            composition = BatchComposition(
                source_index=np.zeros((B, 0), dtype=np.int64),
                lengths=lengths,
                moment_row=np.arange(B),
                context_row=np.full(B, -1),
                offset=np.zeros(B, dtype=np.int64),
            )
            moments = None
            video = padded

        text_flat, text_lengths = pad_rows(columns.text)
        text = text_flat.reshape(B, int(text_lengths.max()), -1)[composition.moment_row]
        batch = {
            "video_features": video if isinstance(video, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(video)),
            "video_mask": torch.from_numpy(length_mask(composition.lengths, video.shape[1])),
            "text_features": torch.from_numpy(np.ascontiguousarray(text)),
            "text_mask": torch.from_numpy(length_mask(text_lengths[composition.moment_row], text.shape[1])),
        }
        labels, meta = [], []
        for out in range(len(composition.lengths)):
            row, context = int(composition.moment_row[out]), int(composition.context_row[out])
            ctx_l = int(composition.lengths[out])
            entry = {
                "qid": columns.qid[row],
                "vid": columns.vid[row],
                "query": columns.query[row],
                "clip_length": float(self.clip_length),
                "synthetic": context >= 0,
            }
            if context >= 0:
                shift = int(composition.offset[out])
                windows, clip_ids = remap_moment(
                    moments["windows"][row], moments["clip_ids"][row], shift, self.clip_length
                )
                scores, duration = moments["scores"][row], ctx_l * float(self.clip_length)
                entry.update(
                    context_qid=columns.qid[context],
                    context_vid=columns.vid[context],
                    source_duration=float(columns.duration[row]),
                    source_relevant_windows=columns.windows[row].tolist(),
                    moment_shift=shift * float(self.clip_length),
                )
            else:
                windows, clip_ids, scores = columns.windows[row], columns.clip_ids[row], columns.scores[row]
                duration = float(columns.duration[row])
            entry["duration"] = duration
            entry["relevant_windows"] = windows.tolist()
            meta.append(entry)
            if with_labels:
                arrays = row_labels(
                    windows, clip_ids, scores, ctx_l, self.clip_length, duration, rng,
                    max_windows=self.max_windows, pseudo_label_clip=self.pseudo_label_clip,
                )
                labels.append({name: torch.from_numpy(value) for name, value in arrays.items()})
        if with_labels:
            batch["labels"] = labels
            batch["negative_text_index"] = torch.from_numpy(self._negatives(columns, composition, rng))
        batch["meta"] = meta
        return batch

    def _windowed_batch(self, columns: _Rows) -> dict:
        """An evaluation batch with a video longer than ``max_video_length``: the processor's windows, no labels."""
        inputs, starts = self.processor.pad(columns.video, columns.text)
        batch = {name: torch.from_numpy(array) for name, array in inputs.items()}
        batch["meta"] = [
            {"qid": qid, "vid": vid, "query": query, "clip_length": float(self.clip_length), "synthetic": False,
             "duration": float(duration), "relevant_windows": windows.tolist(), "window_starts": video_starts}
            for qid, vid, query, duration, windows, video_starts in zip(
                columns.qid, columns.vid, columns.query, columns.duration, columns.windows, starts)
        ]
        return batch

    @staticmethod
    def _negatives(columns: _Rows, composition: BatchComposition, rng: np.random.Generator) -> np.ndarray:
        """Each output row's negative query (:mod:`.negatives`): none from the videos the row's clips come from."""
        _, video_id = np.unique(np.asarray(columns.vid, dtype=object).astype(str), return_inverse=True)
        moment_video = video_id[composition.moment_row]
        context_video = np.where(composition.context_row >= 0, video_id[np.maximum(composition.context_row, 0)], -1)
        eligible = negative_eligibility(np.stack([moment_video, context_video], axis=1), moment_video)
        return choose_negatives(eligible, rng)

    def _compose(self, columns: _Rows, padded: np.ndarray, lengths: np.ndarray, rng: np.random.Generator):
        """Run the synthesizer; returns the composition and each row's moment cut to its video (windows clipped to
        [0, L·clip_length], clip ids < L), which is what synthesized samples are labelled with."""
        video_seconds = lengths * float(self.clip_length)
        windows, clip_ids, scores = [], [], []
        for i, w in enumerate(columns.windows):
            inside = w[:, 0] < video_seconds[i]
            windows.append(np.stack([w[inside, 0], np.minimum(w[inside, 1], video_seconds[i])], axis=1))
            keep = columns.clip_ids[i] < lengths[i]
            clip_ids.append(columns.clip_ids[i][keep])
            scores.append(columns.scores[i][keep])
        eligible = np.array([len(w) > 0 for w in windows])
        block_start, block_end = moment_blocks(windows, clip_ids, lengths, float(self.clip_length))
        composition = self.synthesizer.compose(
            lengths, block_start, block_end, columns.vid, rng,
            features=padded, eligible=eligible, padded_length=padded.shape[1],
        )
        return composition, {"windows": windows, "clip_ids": clip_ids, "scores": scores}
