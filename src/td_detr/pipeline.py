"""The ``"moment-retrieval"`` pipeline: a video file (or its clip features) and a query in, ranked windows in seconds
and per-clip saliency out.

    import td_detr.pipeline  # registers the task with transformers (cheap, but not done by `import td_detr`)
    from transformers import pipeline

    pipe = pipeline("moment-retrieval", model="path/or/repo-of-a-td-detr-clip-model",
                    clip_model="openai/clip-vit-base-patch32")
    pipe("my_video.mp4", "a man opens the fridge")
    # {"windows": [{"start": 12.0, "end": 20.0, "score": 0.91}, ...], "saliency": [...], "clip_length": 2.0,
    #  "duration": 61.3}

Inputs:
    * ``video``: a path to a video file (encoded with the CLIP image tower, see `td_detr.features`; needs a model whose
      ``video_feature_size`` is CLIP's projection dim, e.g. the ``td-detr-qvh-clip`` config), or precomputed raw clip
      features: an array ``[clips, dim]`` (one feature type) or a list of per-type arrays (e.g. ``[slowfast, clip]``, in
      the training order). Each type is L2-normalised per row and the types are cut to the shortest and concatenated,
      as the data sets do; the model appends TEF itself.
    * ``query``: a string (encoded with the CLIP text tower) or precomputed token features ``[tokens, dim]``; rows are
      L2-normalised and cut to ``max_query_length``.
    * keyword arguments: ``duration`` (seconds; default: from the file, or clips × clip length for features),
      ``top_k`` (windows returned; default all), ``nms_threshold`` (see below), ``window_stride`` (clips).

Long videos. The model was trained on at most ``config.max_video_length`` clips (75 = 150 s for QVHighlights). A longer
video is cut into sliding windows of that many clips with stride ``window_stride`` (default half a window; the
last window is aligned with the video's end so every clip is covered) and all windows run as one batch. Each window's
predictions are post-processed in its own time frame, shifted to absolute seconds and clamped to the duration; the
windows of all sliding windows are pooled, sorted by score and de-duplicated with greedy temporal NMS (a window is
dropped when its IoU with a higher-scored kept window is ≥ ``nms_threshold``, 0.7 by default; ``None`` keeps all).
Per-clip saliency is the mean over the sliding windows that contain the clip. A video that fits in one window is
predicted in one pass with no NMS, exactly as ``model.post_process`` does (the reference post-processing has none).

Windows are de-normalised with the clip span the model saw (clips × clip length, as in training) and then clamped to
the real duration, so a partial last clip does not shrink every window.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .data.layout import l2_normalize_rows
from .errors import TDDetrInputError
from .features import DEFAULT_CLIP_MODEL, CLIPFeatureEncoder, load_clip_encoder
from .modeling_td_detr import TDDetrForMomentRetrieval, TDDetrMomentRetrievalOutput
from .span_utils import temporal_iou

TASK = "moment-retrieval"
DEFAULT_NMS_THRESHOLD = 0.7
_UNSET = object()  # `nms_threshold=None` is meaningful (no NMS), so "not given" needs its own marker


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
    """Pool the post-processed predictions of sliding windows (``records[i]`` from ``model.post_process`` in window
    ``i``'s own time frame, which starts at clip ``window_starts[i]``) into ranked absolute windows [n, 3] and per-clip
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

    saliency = np.array([record["pred_saliency_scores"] for record in records], dtype=np.float64)
    clips = starts[:, None] + np.arange(saliency.shape[1])
    totals = np.bincount(clips.ravel(), weights=saliency.ravel(), minlength=num_clips)
    counts = np.bincount(clips.ravel(), minlength=num_clips)
    if (counts[:num_clips] == 0).any():
        raise ValueError("the sliding windows do not cover every clip")
    return windows, totals[:num_clips] / counts[:num_clips]


def _as_array(value, what: str) -> np.ndarray:
    array = value.detach().float().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, np.float32)
    if array.ndim != 2 or 0 in array.shape:
        raise TDDetrInputError(f"{what} must be a non-empty 2-D array [rows, dim], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise TDDetrInputError(f"{what} contain NaN or inf")
    return array.astype(np.float32, copy=False)


def prepare_video_features(video) -> np.ndarray:
    """Model-ready video features from raw clip features: one array [clips, dim] or a list of per-type arrays, each
    L2-normalised per row, cut to the shortest type and concatenated (no TEF)."""
    types = [video] if isinstance(video, (np.ndarray, torch.Tensor)) else list(video)
    if not types:
        raise TDDetrInputError("no video features given")
    arrays = [_as_array(array, f"video features (type {index})") for index, array in enumerate(types)]
    length = min(len(array) for array in arrays)
    return np.concatenate([l2_normalize_rows(array[:length]) for array in arrays], axis=1)


def prepare_text_features(text, max_query_length: int | None) -> np.ndarray:
    """Model-ready query features: rows [:max_query_length], each L2-normalised."""
    return l2_normalize_rows(_as_array(text, "text features")[:max_query_length])


class MomentRetrievalPipeline(Pipeline):
    """``pipe(video, query, **kwargs)`` → ``{"windows": [{"start", "end", "score"}, ...] best first, "saliency":
    [one score per clip], "clip_length": s, "duration": s}``; see the module docstring.

    Args:
        model: a [`TDDetrForMomentRetrieval`].
        clip_model: CLIP checkpoint name or path, or a [`CLIPFeatureEncoder`], for video files and text queries; loaded
            on first use (default ``openai/clip-vit-base-patch32``), so feature-only use never loads it.
        window_batch_size: sliding windows per forward pass.
        Other arguments as `transformers.Pipeline` (e.g. ``device``).
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, model, clip_model=None, clip_batch_size: int = 64, window_batch_size: int = 32, **kwargs):
        super().__init__(model=model, **kwargs)
        self.model.eval()  # a freshly built model is in training mode; dropout must be off
        self.clip_model = clip_model
        self.clip_batch_size = clip_batch_size
        self.window_batch_size = window_batch_size
        self._clip_encoder = None

    @property
    def clip_encoder(self) -> CLIPFeatureEncoder:
        """The CLIP encoder, loaded on first use on the pipeline's device."""
        if self._clip_encoder is None:
            self._clip_encoder = load_clip_encoder(self.clip_model or DEFAULT_CLIP_MODEL, self.device,
                                                   self.clip_batch_size)
        return self._clip_encoder

    def __call__(self, video, query=None, **kwargs):
        """``video`` and ``query`` as in the module docstring; or a dict / list of dicts with those two keys."""
        if isinstance(video, dict) or (isinstance(video, list) and video and isinstance(video[0], dict)):
            return super().__call__(video, **kwargs)
        if query is None:
            raise TDDetrInputError("give a query: pipe(video, query)")
        # wrapped in a dict so that a list of per-type feature arrays is not taken for a batch of inputs
        return super().__call__({"video": video, "query": query}, **kwargs)

    def _check_sizes(self, video_size: int, text_size: int | None) -> None:
        config = self.model.config
        if video_size != config.video_feature_size or text_size not in (None, config.text_feature_size):
            given = f"{video_size}-d video" + (f" / {text_size}-d text" if text_size is not None else "")
            raise TDDetrInputError(
                f"the inputs give {given} features but the model expects {config.video_feature_size}-d video / "
                f"{config.text_feature_size}-d text. Video files work with models trained on this CLIP model's "
                f"features alone (e.g. the td-detr-qvh-clip config); for other models pass precomputed features, "
                f"every type in the training order"
            )

    def _sanitize_parameters(self, duration=None, top_k=None, nms_threshold=_UNSET, window_stride=None):
        preprocess = {key: value for key, value in (("duration", duration), ("window_stride", window_stride))
                      if value is not None}
        postprocess = {"top_k": top_k} if top_k is not None else {}
        if nms_threshold is not _UNSET:
            postprocess["nms_threshold"] = nms_threshold
        return preprocess, {}, postprocess

    def preprocess(self, inputs: dict, duration: float | None = None, window_stride: int | None = None) -> dict:
        config = self.model.config
        video, query = inputs["video"], inputs["query"]
        if isinstance(video, (str, os.PathLike)):
            self._check_sizes(self.clip_encoder.image_feature_size, None)  # before spending time decoding
            encoded = self.clip_encoder.encode_video(video, config.clip_length)
            video, duration = encoded.features, duration or encoded.duration
        video = prepare_video_features(video)
        if isinstance(query, str):
            query = self.clip_encoder.encode_text(query)
        text = prepare_text_features(query, config.max_query_length)
        self._check_sizes(video.shape[1], text.shape[1])
        num_clips = len(video)
        duration = float(duration or num_clips * config.clip_length)
        if not duration > 0:
            raise TDDetrInputError(f"duration must be positive, got {duration}")
        starts = sliding_window_starts(num_clips, config.max_video_length, window_stride)
        window = min(num_clips, config.max_video_length or num_clips)
        windows = video[starts[:, None] + np.arange(window)]  # [windows, clips, dim]
        return {
            "video_features": torch.from_numpy(windows),
            "text_features": torch.from_numpy(text)[None],
            "window_starts": starts,
            "num_clips": num_clips,
            "duration": duration,
        }

    def _forward(self, model_inputs: dict) -> dict:
        video, text = model_inputs.pop("video_features"), model_inputs.pop("text_features")
        video, text = video.to(self.model.dtype), text.to(self.model.dtype)
        outputs = []
        for first in range(0, len(video), self.window_batch_size):
            chunk = video[first: first + self.window_batch_size]
            count, length = chunk.shape[:2]
            output = self.model(
                video_features=chunk, video_mask=chunk.new_ones(count, length),
                text_features=text.expand(count, -1, -1), text_mask=text.new_ones(count, text.shape[1]),
            )
            outputs.append((output.logits, output.pred_spans, output.saliency_scores, output.video_mask))
        logits, spans, saliency, mask = (torch.cat(parts) for parts in zip(*outputs))
        return {"logits": logits, "pred_spans": spans, "saliency_scores": saliency, "video_mask": mask, **model_inputs}

    def postprocess(self, model_outputs: dict, top_k: int | None = None,
                    nms_threshold: float | None = DEFAULT_NMS_THRESHOLD) -> dict:
        config = self.model.config
        outputs = TDDetrMomentRetrievalOutput(**{key: model_outputs[key] for key in
                                                 ("logits", "pred_spans", "saliency_scores", "video_mask")})
        window_span = outputs.video_mask.shape[1] * config.clip_length  # seconds the model's [0, 1] spans stand for
        records = self.model.post_process(outputs, [window_span] * outputs.video_mask.shape[0])
        windows, saliency = merge_window_predictions(
            records, model_outputs["window_starts"], config.clip_length, model_outputs["num_clips"],
            model_outputs["duration"], nms_threshold,
        )
        return {
            "windows": [{"start": start, "end": end, "score": score} for start, end, score in windows[:top_k].tolist()],
            "saliency": saliency.tolist(),
            "clip_length": float(config.clip_length),
            "duration": model_outputs["duration"],
        }


def moment_retrieval_pipeline(model, clip_model=None, device=None, **kwargs) -> MomentRetrievalPipeline:
    """The ``"moment-retrieval"`` pipeline for a [`TDDetrForMomentRetrieval`] (or a saved folder / Hub id of one);
    same as ``transformers.pipeline("moment-retrieval", model=model, clip_model=clip_model, device=device)``."""
    from transformers import pipeline

    return pipeline(TASK, model=model, clip_model=clip_model, device=device, **kwargs)


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=MomentRetrievalPipeline, pt_model=TDDetrForMomentRetrieval)

__all__ = [
    "DEFAULT_NMS_THRESHOLD",
    "TASK",
    "MomentRetrievalPipeline",
    "merge_window_predictions",
    "moment_retrieval_pipeline",
    "prepare_text_features",
    "prepare_video_features",
    "sliding_window_starts",
    "temporal_nms",
]
