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

Preparation, long videos and post-processing are the model's [`TDDetrProcessor`] (saved with it as
``preprocessor_config.json``; made from the config for models saved without one): each feature type is L2-normalised
and the types are cut to the shortest and concatenated; a video longer than ``config.max_video_length`` clips is cut
into sliding windows with stride ``window_stride`` (default half a window; the last window ends at the video's end)
that run as one batch; every window's predictions are shifted to absolute seconds, clamped to the duration, pooled,
ranked and de-duplicated with greedy temporal NMS (IoU ≥ ``nms_threshold``, 0.7 by default; ``None`` keeps all); per-clip
saliency is the mean over the windows holding the clip. A video that fits is predicted in one pass with no NMS.
Windows are in seconds of the clips the model saw (clips × clip length, as in training), clamped to the duration.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .errors import TDDetrInputError
from .features import DEFAULT_CLIP_MODEL, CLIPFeatureEncoder, load_clip_encoder
from .modeling_td_detr import TDDetrForMomentRetrieval, TDDetrMomentRetrievalOutput
from .processing_td_detr import DEFAULT_NMS_THRESHOLD, TDDetrProcessor, load_processor

TASK = "moment-retrieval"
_UNSET = object()  # `nms_threshold=None` is meaningful (no NMS), so "not given" needs its own marker


class MomentRetrievalPipeline(Pipeline):
    """``pipe(video, query, **kwargs)`` → ``{"windows": [{"start", "end", "score"}, ...] best first, "saliency":
    [one score per clip], "clip_length": s, "duration": s}``; see the module docstring.

    Args:
        model: a [`TDDetrForMomentRetrieval`].
        clip_model: CLIP checkpoint name or path, or a [`CLIPFeatureEncoder`], for video files and text queries; loaded
            on first use (default ``openai/clip-vit-base-patch32``), so feature-only use never loads it.
        processor: the model's [`TDDetrProcessor`] (default: the one saved with the model, else from its config).
        window_batch_size: sliding windows per forward pass.
        Other arguments as `transformers.Pipeline` (e.g. ``device``).
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, model, clip_model=None, clip_batch_size: int = 64, window_batch_size: int = 32,
                 processor: TDDetrProcessor | None = None, **kwargs):
        super().__init__(model=model, **kwargs)
        self.model.eval()  # a freshly built model is in training mode; dropout must be off
        if processor is None:
            name = getattr(self.model, "name_or_path", "") or ""
            processor = load_processor(name, self.model.config) if name else TDDetrProcessor.from_model_config(
                self.model.config)
        self.processor = processor
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

    def _check_video_size(self, video_size: int) -> None:
        config = self.model.config
        if video_size != config.video_feature_size:
            raise TDDetrInputError(
                f"the video gives {video_size}-d features but the model expects {config.video_feature_size}-d video "
                f"features. Video files work with models trained on this CLIP model's features alone (e.g. the "
                f"td-detr-qvh-clip config); for other models pass precomputed features, every type in the training order"
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
            self._check_video_size(self.clip_encoder.image_feature_size)  # before spending time decoding
            encoded = self.clip_encoder.encode_video(video, config.clip_length)
            video, duration = encoded.features, duration or encoded.duration
        if isinstance(query, str):
            query = self.clip_encoder.encode_text(query)
        if duration is not None and not duration > 0:
            raise TDDetrInputError(f"duration must be positive, got {duration}")
        model_inputs = self.processor([video], [query], window_stride=window_stride)
        return {**model_inputs, "duration": duration}

    def _forward(self, model_inputs: dict) -> dict:
        video, text = model_inputs.pop("video_features"), model_inputs.pop("text_features")
        video_mask, text_mask = model_inputs.pop("video_mask"), model_inputs.pop("text_mask")
        video, text = video.to(self.model.dtype), text.to(self.model.dtype)
        outputs = []
        for first in range(0, len(video), self.window_batch_size):
            rows = slice(first, first + self.window_batch_size)
            output = self.model(video_features=video[rows], video_mask=video_mask[rows], text_features=text[rows],
                                text_mask=text_mask[rows])
            outputs.append((output.logits, output.pred_spans, output.saliency_scores, output.video_mask))
        logits, spans, saliency, mask = (torch.cat(parts) for parts in zip(*outputs))
        return {"logits": logits, "pred_spans": spans, "saliency_scores": saliency, "video_mask": mask, **model_inputs}

    def postprocess(self, model_outputs: dict, top_k: int | None = None,
                    nms_threshold: float | None = DEFAULT_NMS_THRESHOLD) -> dict:
        outputs = TDDetrMomentRetrievalOutput(**{key: model_outputs[key] for key in
                                                 ("logits", "pred_spans", "saliency_scores", "video_mask")})
        result = self.processor.post_process_moment_retrieval(
            outputs, [model_outputs["duration"]], model_outputs["window_starts"], nms_threshold=nms_threshold,
            top_k=top_k)[0]
        saliency = result["pred_saliency_scores"]
        clip_length = self.processor.clip_length
        duration = model_outputs["duration"] or len(saliency) * clip_length
        return {
            "windows": [{"start": start, "end": end, "score": score}
                        for start, end, score in result["pred_relevant_windows"]],
            "saliency": saliency,
            "clip_length": clip_length,
            "duration": float(duration),
        }


def moment_retrieval_pipeline(model, clip_model=None, device=None, **kwargs) -> MomentRetrievalPipeline:
    """The ``"moment-retrieval"`` pipeline for a [`TDDetrForMomentRetrieval`] (or a saved folder / Hub id of one);
    same as ``transformers.pipeline("moment-retrieval", model=model, clip_model=clip_model, device=device)``."""
    from transformers import pipeline

    return pipeline(TASK, model=model, clip_model=clip_model, device=device, **kwargs)


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=MomentRetrievalPipeline, pt_model=TDDetrForMomentRetrieval)

__all__ = ["TASK", "MomentRetrievalPipeline", "moment_retrieval_pipeline"]
