"""`TDDetrProcessor`: the model's pre- and post-processing (the `DetrImageProcessor` role), saved with the model as
``preprocessor_config.json``.

Pre-processing (``__call__``): raw clip features, one array per feature type (e.g. SlowFast then CLIP), and per-token
text features → model inputs. Each video feature type is checked against the width it had in training, L2-normalised
row by row on its own (``x / (‖x‖ + 1e-5)``, as QD-DETR's loader), all types are cut to the shortest and
concatenated; text rows are cut to ``max_query_length`` and L2-normalised. Videos are padded into a batch with masks.
A video longer than ``max_video_length`` clips is cut into half-overlapping windows of that many clips (the last one
ends at the video's end), one model row each; ``long_video="refuse"`` raises instead. Nothing is cut silently.

Post-processing (:meth:`TDDetrProcessor.post_process_moment_retrieval`): one convention for every caller — a
predicted window is in seconds of the clips the model was given: the model's normalised span × (valid clips ×
``clip_length``), shifted by the window's first clip, clamped to ``[0, min(duration, clips × clip_length)]``. The
windows of a video cut into several model rows are pooled, ranked and de-duplicated by temporal NMS (IoU ≥
``nms_threshold``); per-clip saliency is the mean over the rows holding the clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from .configuration_td_detr import POSTPROCESS_CLAMPS
from .data.layout import (
    TEXT_FEATURE_KEY,
    PathLike,
    load_video_feature_types,
    read_feature_array,
    text_feature_path,
)
from .errors import TDDetrInputError

LONG_VIDEO_MODES = ("window", "refuse")
SPAN_UNITS = ("clips", "duration")
# The official inference's decoding (span × annotation duration); `td-detr train --official` saves the processor
# with it (the model side of the official switch: `configuration_td_detr.OFFICIAL_TD_DETR`).
OFFICIAL_PROCESSING = {"span_unit": "duration"}
NORMALIZATIONS = ("l2", "none")
DEFAULT_NMS_THRESHOLD = 0.7
L2_EPS = 1e-5  # x / (||x|| + eps), as the reference loader does


def l2_normalize_rows(array: np.ndarray) -> np.ndarray:
    """Row-wise x / (||x||_2 + 1e-5), in float32."""
    return (array / (np.linalg.norm(array, axis=1, keepdims=True) + L2_EPS)).astype(np.float32, copy=False)


def sliding_window_starts(num_clips: int, window: int | None, stride: int | None = None) -> np.ndarray:
    """First clip of every sliding window: ``0, stride, 2·stride, …`` plus a last window ending at the last clip.
    One window (start 0) when the video fits (``window`` None = no cap). ``stride`` defaults to ``window // 2``."""
    if window is None or num_clips <= window:
        return np.zeros(1, dtype=np.int64)
    stride = stride or max(1, window // 2)
    if not 0 < stride <= window:
        raise TDDetrInputError(f"window_stride must be in [1, {window}] clips, got {stride}")
    starts = np.arange(0, num_clips - window, stride)
    return np.append(starts, num_clips - window)


def temporal_nms(windows: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy temporal NMS. ``windows`` [n, 3] rows (start, end, score); returns the kept rows, best first."""
    import torch

    from .span_utils import temporal_iou

    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 3)
    windows = windows[np.argsort(-windows[:, 2], kind="stable")]
    spans = torch.from_numpy(windows[:, :2])
    overlaps = (temporal_iou(spans, spans)[0] >= threshold).numpy()
    suppressed = np.zeros(len(windows), dtype=bool)
    for index in range(len(windows)):  # greedy, inherently sequential; n is a few hundred at most
        if not suppressed[index]:
            suppressed[index + 1:] |= overlaps[index, index + 1:]
    return windows[~suppressed]


def merge_window_predictions(
    records: Sequence[dict],
    window_starts: np.ndarray,
    clip_length: float,
    num_clips: int,
    duration: float,
    nms_threshold: float | None = DEFAULT_NMS_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Pool the post-processed predictions of sliding windows (``records[i]`` in window ``i``'s own time frame, which
    starts at clip ``window_starts[i]``) into ranked absolute windows [n, 3] clamped to ``duration`` and per-clip
    saliency [num_clips] (mean over the windows covering each clip). NMS runs only when there are several windows."""
    starts = np.asarray(window_starts, dtype=np.int64)
    windows = np.array([record["pred_relevant_windows"] for record in records], dtype=np.float64).reshape(
        len(records), -1, 3)
    windows[..., :2] = np.minimum(windows[..., :2] + (starts * clip_length)[:, None, None], duration)
    windows = np.round(windows.reshape(-1, 3), 4)
    if len(records) > 1 and nms_threshold is not None:
        windows = temporal_nms(windows, nms_threshold)
    else:
        windows = windows[np.argsort(-windows[:, 2], kind="stable")]

    totals, counts = np.zeros(num_clips), np.zeros(num_clips)
    for start, record in zip(starts, records):
        saliency = np.asarray(record["pred_saliency_scores"], dtype=np.float64)
        totals[start: start + len(saliency)] += saliency[: max(0, num_clips - start)]
        counts[start: start + len(saliency)] += 1
    if (counts == 0).any():
        raise ValueError("the sliding windows do not cover every clip")
    return windows, totals / counts


def pad_rows(arrays: Sequence[np.ndarray], extra_rows: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded [B, Lmax, D] float32 rows as a flat [B·Lmax + extra_rows, D] buffer (extra zero rows: a padding
    source for the synthesizer's gathers), and the lengths."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    width = int(lengths.max())
    flat = np.zeros((len(arrays) * width + extra_rows, arrays[0].shape[1]), dtype=np.float32)
    for i, array in enumerate(arrays):
        flat[i * width: i * width + len(array)] = array
    return flat, lengths


def length_mask(lengths: np.ndarray, width: int) -> np.ndarray:
    """[B, width] float32 mask, 1 for the first ``lengths[b]`` positions."""
    return (np.arange(width) < np.asarray(lengths)[:, None]).astype(np.float32)


def _as_array(value, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().float().cpu().numpy()
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 2 or 0 in array.shape:
        raise TDDetrInputError(f"{what} must be a non-empty 2-D array [rows, dim], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise TDDetrInputError(f"{what} contain NaN or inf")
    return array


class TDDetrProcessor(FeatureExtractionMixin):
    """Prepares clip and token features for [`TDDetrForMomentRetrieval`] and turns its outputs into windows in seconds.

    Args:
        clip_length (`float`, defaults to 2.0): seconds per clip (feature row).
        video_feature_types (`list[str]`, *optional*): names of the video feature types in input order (e.g. the
            feature folders ``["slowfast_features", "clip_features"]``); used in error messages.
        video_feature_dims (`list[int]`, *optional*): width of each video feature type in input order; when set, every
            input is checked type by type (feature files given in the wrong order are caught even when the total
            width matches). `None`: any number of types, checked only against `video_feature_size`.
        video_feature_size (`int`, *optional*): width of the concatenated video features (default: the sum of
            `video_feature_dims`); checked when set.
        text_feature_dim (`int`, *optional*): width of the text features; checked when set.
        normalize (`str`, defaults to ``"l2"``): ``"l2"`` (each row of each type divided by its L2 norm + 1e-5) or
            ``"none"`` (features are already normalised).
        max_video_length (`int`, *optional*, defaults to 75): clips the model takes in one row (`None`: no cap).
        max_query_length (`int`, *optional*, defaults to 32): text tokens kept (`None`: all).
        long_video (`str`, defaults to ``"window"``): a video longer than `max_video_length` is cut into
            half-overlapping windows (``"window"``) or refused with a [`TDDetrInputError`] (``"refuse"``).
        window_stride (`int`, *optional*): clips between window starts (default: half a window).
        nms_threshold (`float`, *optional*, defaults to 0.7): temporal NMS IoU for pooled windows of a long video
            (`None`: keep all).
        round_to_clip (`bool`, defaults to `True`): round window ends to multiples of `clip_length`.
        min_window_clips (`int`, defaults to 1): every window spans at least this many clips (0: zero-length windows
            survive, as in the reference post-processing); see `TDDetrConfig.min_window_clips`.
        span_unit (`str`, defaults to ``"clips"``): what a predicted [0, 1] span stands for: the clips the model was
            given (``"clips"``, the convention training uses for its targets) or, for a video predicted in one row with
            a known duration, that duration (``"duration"``: the official QD-DETR / TD-DETR decoding; the two agree
            when the features cover the duration, as on QVHighlights). Windowed videos always use clips.
        clamp (`str`, defaults to ``"duration"``): windows stay in [0, min(duration, clips × clip_length)], or
            ``"official"``: in [0, 150] s as the official inference (`TDDetrConfig.postprocess_clamp`, copied by
            :meth:`from_model_config`).
    """

    model_input_names = ["video_features", "video_mask", "text_features", "text_mask"]

    def __init__(
        self,
        clip_length: float = 2.0,
        video_feature_types: Sequence[str] | None = None,
        video_feature_dims: Sequence[int] | None = None,
        video_feature_size: int | None = None,
        text_feature_dim: int | None = None,
        normalize: str = "l2",
        max_video_length: int | None = 75,
        max_query_length: int | None = 32,
        long_video: str = "window",
        window_stride: int | None = None,
        nms_threshold: float | None = DEFAULT_NMS_THRESHOLD,
        round_to_clip: bool = True,
        span_unit: str = "clips",
        clamp: str = "duration",
        min_window_clips: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(clip_length, bool) or not isinstance(clip_length, (int, float)) or not clip_length > 0:
            raise TDDetrInputError(f"clip_length must be a positive number of seconds, got {clip_length!r}")
        if normalize not in NORMALIZATIONS:
            raise TDDetrInputError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if span_unit not in SPAN_UNITS:
            raise TDDetrInputError(f"span_unit must be one of {SPAN_UNITS}, got {span_unit!r}")
        if clamp not in POSTPROCESS_CLAMPS:
            raise TDDetrInputError(f"clamp must be one of {POSTPROCESS_CLAMPS}, got {clamp!r}")
        if long_video not in LONG_VIDEO_MODES:
            raise TDDetrInputError(f"long_video must be one of {LONG_VIDEO_MODES}, got {long_video!r}")
        for name, value in (("max_video_length", max_video_length), ("max_query_length", max_query_length),
                            ("window_stride", window_stride), ("text_feature_dim", text_feature_dim),
                            ("video_feature_size", video_feature_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise TDDetrInputError(f"{name} must be a positive int or None, got {value!r}")
        dims = None if video_feature_dims is None else [int(d) for d in video_feature_dims]
        if dims is not None and (not dims or min(dims) <= 0):
            raise TDDetrInputError(f"video_feature_dims must be positive widths, got {video_feature_dims!r}")
        types = None if video_feature_types is None else [str(t) for t in video_feature_types]
        if types is not None and dims is not None and len(types) != len(dims):
            raise TDDetrInputError(f"{len(types)} video_feature_types but {len(dims)} video_feature_dims")
        if dims is not None and video_feature_size is not None and sum(dims) != video_feature_size:
            raise TDDetrInputError(f"video_feature_dims {dims} do not add up to video_feature_size {video_feature_size}")
        self.clip_length = float(clip_length)
        self.video_feature_types = types
        self.video_feature_dims = dims
        self.video_feature_size = sum(dims) if video_feature_size is None and dims is not None else video_feature_size
        self.text_feature_dim = text_feature_dim
        self.normalize = normalize
        self.max_video_length = max_video_length
        self.max_query_length = max_query_length
        self.long_video = long_video
        self.window_stride = window_stride
        self.nms_threshold = nms_threshold
        self.round_to_clip = bool(round_to_clip)
        self.span_unit = span_unit
        self.clamp = clamp
        self.min_window_clips = int(min_window_clips)

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "TDDetrProcessor":
        """A processor for a model config: clip length, caps and clip rounding from the config, the feature widths
        from ``kwargs`` (``video_feature_dims`` must add up to ``config.video_feature_size``) or the config's totals."""
        settings = dict(
            clip_length=config.clip_length, max_video_length=config.max_video_length,
            max_query_length=config.max_query_length, round_to_clip=getattr(config, "round_to_clip", True),
            clamp=getattr(config, "postprocess_clamp", "duration"),
            min_window_clips=getattr(config, "min_window_clips", 1),
            video_feature_size=config.video_feature_size, text_feature_dim=config.text_feature_size,
        )
        settings.update(kwargs)
        processor = cls(**settings)
        processor.check_model_config(config)
        return processor

    def check_model_config(self, config) -> None:
        """Raise [`TDDetrInputError`] when this processor's settings do not fit the model's config."""
        if self.clamp != getattr(config, "postprocess_clamp", "duration"):
            raise TDDetrInputError(f"the processor clamps windows as {self.clamp!r}, but the model config's "
                                   f"postprocess_clamp is {config.postprocess_clamp!r}")
        if self.video_feature_size is not None and self.video_feature_size != config.video_feature_size:
            raise TDDetrInputError(f"the processor's video features are {self.video_feature_size}-d "
                                   f"({self.video_feature_dims or 'one type'}), but the model takes "
                                   f"{config.video_feature_size}-d video features")
        if self.text_feature_dim is not None and self.text_feature_dim != config.text_feature_size:
            raise TDDetrInputError(f"the processor's text width is {self.text_feature_dim}, but the model takes "
                                   f"{config.text_feature_size}-d text features")
        if self.clip_length != float(config.clip_length):
            raise TDDetrInputError(f"the processor's clip length is {self.clip_length:g} s, but the model config's "
                                   f"is {config.clip_length:g} s")

    # -- pre-processing -----------------------------------------------------------------------------------------------

    def _normalized(self, array: np.ndarray) -> np.ndarray:
        return l2_normalize_rows(array) if self.normalize == "l2" else array

    def _type_name(self, index: int) -> str:
        names = self.video_feature_types
        return f"video feature type {index + 1}" + (f" ({names[index]})" if names else "")

    def check_video_feature_dims(self, dims: Sequence[int], where: str = "the input") -> None:
        """Check per-type widths (e.g. read from the data set's files) against the ones the model was trained on."""
        expected = self.video_feature_dims
        if expected is None:
            if self.video_feature_size is not None and sum(dims) != self.video_feature_size:
                raise TDDetrInputError(f"{where} has {sum(dims)}-d video features in all ({list(dims)}) but the model "
                                       f"takes {self.video_feature_size}-d (give every feature type, in order)")
            return
        order = f" (expected, in order: {', '.join(self.video_feature_types or map(str, expected))})"
        if len(dims) != len(expected):
            raise TDDetrInputError(f"{where} has {len(dims)} video feature types but the model takes {len(expected)}"
                                   f"{order}")
        for index, (got, want) in enumerate(zip(dims, expected)):
            if got != want:
                raise TDDetrInputError(f"{where}: {self._type_name(index)} is {got}-d but the model was trained on "
                                       f"{want}-d features; are the feature types in the training order?{order}")

    def prepare_video(self, feature_types) -> np.ndarray:
        """One video's model features [clips, sum(dims)] from its raw per-type arrays (one array: one type):
        widths checked per type, each type normalised, all cut to the shortest, concatenated. Never capped."""
        single = hasattr(feature_types, "shape") and len(feature_types.shape) == 2
        types = [feature_types] if single else list(feature_types)
        if not types:
            raise TDDetrInputError("no video features given")
        arrays = [_as_array(array, f"video features (type {index + 1})") for index, array in enumerate(types)]
        self.check_video_feature_dims([array.shape[1] for array in arrays])
        length = min(len(array) for array in arrays)
        return np.concatenate([self._normalized(array[:length]) for array in arrays], axis=1)

    def prepare_text(self, text) -> np.ndarray:
        """One query's model features [tokens, dim]: width checked, cut to ``max_query_length``, normalised."""
        array = _as_array(text, "text features")
        if self.text_feature_dim is not None and array.shape[1] != self.text_feature_dim:
            raise TDDetrInputError(f"text features are {array.shape[1]}-d but the model takes "
                                   f"{self.text_feature_dim}-d text features")
        return self._normalized(array[: self.max_query_length])

    def window_starts(self, num_clips: int, window_stride: int | None = None) -> np.ndarray:
        """First clip of each model row of a video of ``num_clips`` clips (``[0]`` when it fits)."""
        if self.max_video_length is not None and num_clips > self.max_video_length and self.long_video == "refuse":
            raise TDDetrInputError(
                f"the video has {num_clips} clips ({num_clips * self.clip_length:g} s), more than the model's "
                f"{self.max_video_length} ({self.max_video_length * self.clip_length:g} s); use sliding windows "
                f"(long_video='window') or cut the video")
        return sliding_window_starts(num_clips, self.max_video_length, window_stride or self.window_stride)

    def pad(self, videos: Sequence[np.ndarray], texts: Sequence[np.ndarray], window_stride: int | None = None):
        """Prepared videos and texts → padded model inputs (numpy) and each video's window starts. A video cut into
        windows takes consecutive rows, each with its query's text."""
        starts = [self.window_starts(len(video), window_stride) for video in videos]
        rows, row_texts = [], []
        for video, text, video_starts in zip(videos, texts, starts):
            window = min(len(video), self.max_video_length or len(video))
            rows += [video[start: start + window] for start in video_starts]
            row_texts += [text] * len(video_starts)
        inputs = {}
        for name, arrays in (("video", rows), ("text", row_texts)):
            flat, lengths = pad_rows(arrays)
            inputs[f"{name}_features"] = flat.reshape(len(arrays), int(lengths.max()), -1)
            inputs[f"{name}_mask"] = length_mask(lengths, int(lengths.max()))
        return inputs, [s.tolist() for s in starts]

    def __call__(self, videos, texts, return_tensors: str | None = "pt", window_stride: int | None = None
                 ) -> BatchFeature:
        """Model inputs for a batch: ``videos`` a list with, per video, its raw per-type arrays (or one array),
        ``texts`` a list of per-token arrays. Returns ``video_features`` [R, L, D], ``video_mask`` [R, L],
        ``text_features`` [R, T, Dt], ``text_mask`` [R, T] with R ≥ len(videos) rows (long videos take several), and
        ``window_starts``: per video the first clip of each of its rows, for :meth:`post_process_moment_retrieval`.
        Pass ``model(**{k: inputs[k] for k in processor.model_input_names})``."""
        if len(videos) != len(texts) or not videos:
            raise TDDetrInputError(f"give one text per video (got {len(videos)} videos and {len(texts)} texts)")
        prepared = [self.prepare_video(video) for video in videos]
        inputs, starts = self.pad(prepared, [self.prepare_text(text) for text in texts], window_stride)
        batch = BatchFeature(inputs, tensor_type=return_tensors)
        batch["window_starts"] = starts
        return batch

    # -- post-processing ----------------------------------------------------------------------------------------------

    def post_process_moment_retrieval(
        self, outputs, durations: Sequence[float | None] | None = None, window_starts=None,
        nms_threshold=DEFAULT_NMS_THRESHOLD, top_k: int | None = None,
    ) -> list[dict]:
        """Per video ``{"pred_relevant_windows": [[start_s, end_s, score], ...] best first, "pred_saliency_scores":
        [one per clip]}`` (module docstring for the convention).

        Args:
            outputs: a [`TDDetrMomentRetrievalOutput`] of R model rows.
            durations: per video its length in seconds (or None: clips × clip length), only to clamp windows.
            window_starts: per video the first clip of each of its rows (from ``__call__`` or the collator's
                ``meta``); default one row per video.
            nms_threshold: IoU for the NMS of pooled windows (``DEFAULT_NMS_THRESHOLD``: this processor's).
            top_k: keep the best k windows.
        """
        import torch

        from .postprocessing import OFFICIAL_MAX_TIMESTAMP, post_process_moment_retrieval, widen_short_windows

        if window_starts is None:
            window_starts = [[0]] * len(outputs.video_mask)
        if durations is None:
            durations = [None] * len(window_starts)
        if sum(len(s) for s in window_starts) != len(outputs.video_mask) or len(durations) != len(window_starts):
            raise ValueError(f"{len(outputs.video_mask)} model rows do not match window_starts {window_starts} / "
                             f"{len(durations)} durations")
        # per row: the seconds its [0, 1] span stands for, and the bound of each video's windows
        span_seconds = (outputs.video_mask.detach().double().sum(dim=1).cpu() * self.clip_length).tolist()
        official = [self.span_unit == "duration" and len(s) == 1 and d is not None
                    for s, d in zip(window_starts, durations)]
        row = 0
        for starts, duration, use_duration in zip(window_starts, durations, official):
            if use_duration:
                span_seconds[row] = float(duration)
            row += len(starts)
        rows = post_process_moment_retrieval(outputs, None, clip_length=self.clip_length,
                                             round_to_clip=self.round_to_clip, span_seconds=span_seconds,
                                             clamp=self.clamp, min_window_clips=0)  # widened once pooled
        threshold = self.nms_threshold if nms_threshold is DEFAULT_NMS_THRESHOLD else nms_threshold
        results, first = [], 0
        for starts, duration, use_duration in zip(window_starts, durations, official):
            records = rows[first: first + len(starts)]
            first += len(starts)
            num_clips = max(start + len(r["pred_saliency_scores"]) for start, r in zip(starts, records))
            clip_span = num_clips * self.clip_length
            limit = float(duration) if use_duration else min(clip_span, float(duration or clip_span))
            if self.clamp == "official":
                limit = OFFICIAL_MAX_TIMESTAMP
            windows, saliency = merge_window_predictions(records, starts, self.clip_length, num_clips, limit, threshold)
            if self.min_window_clips > 0:  # inside the final bound, so clamping cannot collapse a window again
                spans = torch.from_numpy(windows[:, :2])
                windows[:, :2] = widen_short_windows(spans, limit, self.min_window_clips * self.clip_length).numpy()
            results.append({"pred_relevant_windows": windows[:top_k].tolist(),
                            "pred_saliency_scores": saliency.tolist()})
        return results


def load_processor(name_or_path, config, **overrides) -> TDDetrProcessor:
    """The processor saved with a model (``preprocessor_config.json``), else one made from its config; checked
    against the config. ``overrides`` set attributes (e.g. ``long_video="refuse"``)."""
    import os

    try:
        processor = TDDetrProcessor.from_pretrained(os.fspath(name_or_path))
    except TDDetrInputError as error:
        raise TDDetrInputError(f"{name_or_path}: bad preprocessor_config.json: {error}") from None
    except OSError:  # no preprocessor_config.json: a model saved before processors existed, or a bare config
        processor = None
    if processor is None:
        processor = TDDetrProcessor.from_model_config(config)
    else:
        processor.check_model_config(config)
    for key, value in overrides.items():
        setattr(processor, key, value)
    return processor


__all__ = ["TDDetrProcessor", "length_mask", "load_processor", "merge_window_predictions", "pad_rows",
           "sliding_window_starts", "temporal_nms"]


def load_video_features(vid: str, video_feature_dirs: Sequence[PathLike], max_length: int | None = None) -> np.ndarray:
    """Video features of ``vid`` read from the standard layout and prepared as the model consumes them:
    [L, sum(dims)] float32, cut to ``max_length`` clips (None or negative: no cap), the types in folder order. No TEF.
    """
    return TDDetrProcessor().prepare_video(load_video_feature_types(vid, video_feature_dirs, max_length))


def load_text_features(qid: int, text_feature_dir: PathLike, max_length: int | None = None) -> np.ndarray:
    """Text features of ``qid`` read from the standard layout and prepared as the model consumes them: the first
    ``max_length`` token rows (None or negative: all), L2-normalised; [T, Dt] float32."""
    array = read_feature_array(text_feature_path(text_feature_dir, qid), TEXT_FEATURE_KEY)
    cap = None if max_length is None or max_length < 0 else max_length
    return TDDetrProcessor(max_query_length=cap or None).prepare_text(array)
