"""What the demo page shows, computed without any web code: a model, optionally a data set split, a CLIP encoder and
a folder of videos, and the answers to three kinds of requests:

* one of the data set's queries (`DemoSession.answer_qid`): ranked windows, per-clip saliency, its ground truth and
  how well the top window matches it;
* a free-text query on one of the data set's videos (`DemoSession.answer_text`), when a CLIP text encoder that
  produces the model's text features is available;
* a video file and a free-text query (`DemoSession.answer_video`), for a model trained on CLIP features alone.

Data set queries are predicted exactly as `td-detr evaluate` predicts them (the evaluation collator with the model's
`TDDetrProcessor`, through `predict_dataset`); free text is prepared by the same processor and video files go through
the ``moment-retrieval`` pipeline with it. Every
reason a request cannot be answered is a sentence (`free_text_problem`, `video_problem`) the page shows instead of a
traceback. CLIP weights are only ever read from a folder or the local Hugging Face cache: the demo never downloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TDDetrInputError

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")
IOU_THRESHOLDS = (0.5, 0.7)


@dataclass
class Answer:
    """One answered query. ``windows`` ``[[start, end, score], ...]`` best first (seconds); ``saliency`` one score per
    clip; ``ground_truth`` ``[[start, end], ...]`` (empty when unknown); ``ground_truth_saliency`` the annotators' mean
    score per clip (0 outside the relevant clips) or None; ``video_path`` a playable file of the video or None."""

    query: str
    windows: list
    saliency: list
    clip_length: float
    duration: float
    vid: str | None = None
    qid: int | None = None
    ground_truth: list = field(default_factory=list)
    ground_truth_saliency: list | None = None
    video_path: str | None = None

    def window_ious(self) -> list[float] | None:
        """IoU of every predicted window with its best-matching ground-truth window (None without ground truth)."""
        if not self.ground_truth or not self.windows:
            return None
        import torch

        from ..span_utils import temporal_iou

        predicted = torch.tensor([w[:2] for w in self.windows], dtype=torch.float64)
        truth = torch.tensor(self.ground_truth, dtype=torch.float64).reshape(-1, 2)
        return temporal_iou(predicted, truth)[0].max(dim=1).values.tolist()

    def metrics(self) -> dict:
        """How well the answer matches the ground truth: ``top_iou`` (IoU of the top window), ``R1@0.5`` /
        ``R1@0.7`` (hit or not), ``first_hit@0.7`` (rank of the first window with IoU ≥ 0.7, or None) and
        ``top_clip_relevant`` (whether the most salient clip lies in a ground-truth window). Empty without ground
        truth."""
        ious = self.window_ious()
        if ious is None:
            return {}
        metrics = {"top_iou": ious[0]}
        metrics.update({f"R1@{t}": ious[0] >= t for t in IOU_THRESHOLDS})
        metrics["first_hit@0.7"] = next((rank for rank, iou in enumerate(ious, 1) if iou >= 0.7), None)
        top_clip_centre = (int(np.argmax(self.saliency)) + 0.5) * self.clip_length
        metrics["top_clip_relevant"] = any(start <= top_clip_centre <= end for start, end in self.ground_truth)
        return metrics

    def record(self) -> dict:
        """The answer in the submission format (plus ground truth and metrics when known), for the page's JSON view."""
        record = {"query": self.query, "pred_relevant_windows": self.windows, "pred_saliency_scores": self.saliency,
                  "clip_length": self.clip_length, "duration": self.duration}
        if self.qid is not None:
            record["qid"] = self.qid
        if self.vid is not None:
            record["vid"] = self.vid
        if self.ground_truth:
            record["relevant_windows"] = self.ground_truth
            record["metrics"] = self.metrics()
        return record


def load_local_clip(name: str | None, model_config) -> tuple[object | None, str | None]:
    """A `CLIPFeatureEncoder` from a folder or the local Hub cache only (never the network), and None; or None and why
    not (a sentence for the page). Also says so when the encoder's text features do not fit the model."""
    if not name:
        return None, "no CLIP model was given (start the demo with --clip-model NAME_OR_FOLDER)"
    folder = Path(name)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(name, local_files_only=True))
        except Exception:  # not cached (LocalEntryNotFoundError), bad repo id (HFValidationError), …: all mean "absent"
            return None, (f"no CLIP weights for {name!r}: it is neither a folder nor in the local Hugging Face cache, "
                          f"and the demo never downloads (fetch it once with `hf download {name}`, or give a folder)")
    try:
        from ..features import CLIPFeatureEncoder

        encoder = CLIPFeatureEncoder.from_pretrained(str(folder))
    except (TDDetrInputError, ImportError) as error:
        return None, f"cannot load the CLIP model {name!r}: {error}"
    if encoder.text_feature_size != model_config.text_feature_size:
        return None, (f"the CLIP model {name!r} gives {encoder.text_feature_size}-d text features but the model reads "
                      f"{model_config.text_feature_size}-d ones")
    return encoder, None


def find_video(video_dir: str | None, vid: str) -> str | None:
    """``{video_dir}/{vid}.<a video suffix>`` when it exists."""
    if not video_dir:
        return None
    for suffix in VIDEO_SUFFIXES:
        path = Path(video_dir) / f"{vid}{suffix}"
        if path.is_file():
            return str(path)
    return None


class DemoSession:
    """The model and what it can be asked about.

    Args:
        model: a [`TDDetrForMomentRetrieval`] (put in eval mode).
        processor: its [`TDDetrProcessor`] (default: made from the model's config).
        dataset: the split whose queries the page lists (a ``datasets.Dataset`` of the moment-retrieval builder), or
            None.
        data_name: its name for the page (e.g. ``"synthetic / validation"``).
        clip_encoder: a `CLIPFeatureEncoder` whose text features fit the model, or None (see ``clip_problem``).
        clip_problem: why there is no encoder (shown in the page).
        video_dir: a folder of videos: ``{vid}.mp4`` (etc.) of the data set's videos, and the files the video tab
            offers.
        synthetic: the data set's query features are generated vectors (no text encoder can make them).
    """

    def __init__(self, model, *, processor=None, dataset=None, data_name: str | None = None, clip_encoder=None,
                 clip_problem: str | None = None, video_dir: str | None = None, synthetic: bool = False):
        from ..processing_td_detr import TDDetrProcessor

        self.model = model.eval()
        self.config = model.config
        self.processor = processor if processor is not None else TDDetrProcessor.from_model_config(model.config)
        self.dataset = dataset
        self.data_name = data_name
        self.clip_encoder = clip_encoder
        self.clip_problem = clip_problem
        self.video_dir = video_dir
        self.synthetic = synthetic
        self._pipeline = None
        self._video_cache: dict = {}
        self._rows: dict[int, int] = {}
        self._queries: list[tuple[int, str, str]] = []
        if dataset is not None:
            columns = dataset.select_columns(["qid", "vid", "query"]).with_format(None)
            for index, row in enumerate(columns):
                self._rows[int(row["qid"])] = index
                self._queries.append((int(row["qid"]), str(row["vid"]), str(row["query"])))
        self._collator = None

    # -- what the page may offer -------------------------------------------------------------------------------------

    @property
    def free_text_problem(self) -> str | None:
        """Why free-text queries on the data set's videos are off, or None when they work."""
        if self.dataset is None:
            return "no data set was given"
        if self.synthetic:
            return ("the synthetic data set's query features are generated vectors, not the output of a text "
                    "encoder, so only its own queries can be asked")
        return self.clip_problem

    @property
    def video_problem(self) -> str | None:
        """Why the video tab cannot answer, or None when it can."""
        if self.clip_encoder is None:
            return self.clip_problem or "no CLIP model was given"
        try:
            import av  # noqa: F401
        except ImportError:
            return "reading video files needs PyAV: pip install 'td-detr[demo]'"
        size = self.clip_encoder.image_feature_size
        if size != self.config.video_feature_size:
            return (f"the model reads {self.config.video_feature_size}-d video features but CLIP image features are "
                    f"{size}-d: only a model trained on CLIP features alone (e.g. the td-detr-qvh-clip config) can "
                    f"run on a video file")
        return None

    def query_choices(self) -> list[tuple[str, int]]:
        """``(label, qid)`` of every query of the data set, in data set order; the label reads ``qid · vid · query``."""
        return [(f"{qid} · {vid} · {query}", qid) for qid, vid, query in self._queries]

    def video_choices(self) -> list[str]:
        """Video files in ``video_dir`` (sorted)."""
        if not self.video_dir:
            return []
        return sorted(str(p) for p in Path(self.video_dir).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)

    # -- answers ------------------------------------------------------------------------------------------------------

    def _row(self, qid) -> dict:
        if self.dataset is None:
            raise TDDetrInputError("no data set was given")
        try:
            index = self._rows[int(qid)]
        except (KeyError, TypeError, ValueError):
            raise TDDetrInputError(f"qid {qid!r} is not a query of {self.data_name or 'the data set'}") from None
        return self.dataset[index]

    def _predict_rows(self, rows) -> dict:
        from ..data.collator import DataCollatorForMomentRetrieval
        from ..inference import predict_dataset

        if self._collator is None:
            self._collator = DataCollatorForMomentRetrieval.from_config(self.config, training=False,
                                                                        processor=self.processor)
        return predict_dataset(self.model, rows, self._collator, batch_size=1, progress=False)[0]

    def _answer_from_row(self, row: dict, record: dict, with_truth: bool) -> Answer:
        answer = Answer(
            query=record["query"], windows=record["pred_relevant_windows"],
            saliency=record["pred_saliency_scores"], clip_length=self.processor.clip_length,
            duration=float(row["duration"]), vid=str(row["vid"]), qid=int(row["qid"]) if with_truth else None,
            video_path=find_video(self.video_dir, str(row["vid"])),
        )
        if with_truth:
            answer.ground_truth = [list(map(float, w)) for w in row.get("relevant_windows") or []]
            answer.ground_truth_saliency = clip_saliency(row, len(answer.saliency))
        return answer

    def answer_qid(self, qid) -> Answer:
        """The model's answer to one of the data set's queries, with its ground truth."""
        row = self._row(qid)
        return self._answer_from_row(row, self._predict_rows([row]), with_truth=True)

    def answer_text(self, qid, text: str) -> Answer:
        """A free-text query on the video of data set query ``qid`` (needs ``free_text_problem`` None)."""
        if self.free_text_problem:
            raise TDDetrInputError(f"free-text queries are off: {self.free_text_problem}")
        if not text or not text.strip():
            raise TDDetrInputError("type a query first")
        row = self._row(qid)
        features = self.processor.prepare_text(self.clip_encoder.encode_text(text.strip()))
        free = {key: row[key] for key in ("qid", "vid", "duration", "video_features")}
        free.update(query=text.strip(), text_features=features)
        return self._answer_from_row(free, self._predict_rows([free]), with_truth=False)

    def answer_video(self, path, text: str) -> Answer:
        """A video file and a free-text query (needs ``video_problem`` None); each file is encoded once."""
        if self.video_problem:
            raise TDDetrInputError(f"videos are off: {self.video_problem}")
        if not path:
            raise TDDetrInputError("choose or upload a video first")
        if not text or not text.strip():
            raise TDDetrInputError("type a query first")
        path = Path(path)
        if not path.is_file():
            raise TDDetrInputError(f"{path}: video file not found")
        key = (str(path.resolve()), path.stat().st_mtime_ns)
        if key not in self._video_cache:
            self._video_cache[key] = self.clip_encoder.encode_video(path, self.processor.clip_length)
        encoded = self._video_cache[key]
        if self._pipeline is None:
            from ..pipeline import moment_retrieval_pipeline

            self._pipeline = moment_retrieval_pipeline(self.model, clip_model=self.clip_encoder,
                                                       device=self.model.device, processor=self.processor)
        result = self._pipeline(encoded.features, text.strip(), duration=encoded.duration)
        return Answer(
            query=text.strip(), windows=[[w["start"], w["end"], w["score"]] for w in result["windows"]],
            saliency=result["saliency"], clip_length=result["clip_length"], duration=result["duration"],
            vid=path.stem, video_path=str(path),
        )


def clip_saliency(row: dict, num_clips: int) -> list[float] | None:
    """The annotators' mean saliency score of every clip (0 for clips outside ``relevant_clip_ids``), or None when the
    row has no saliency annotation."""
    clip_ids = np.asarray(row.get("relevant_clip_ids") or [], dtype=np.int64).reshape(-1)
    if not clip_ids.size:
        return None
    scores = np.asarray(row["saliency_scores"], dtype=np.float64).reshape(len(clip_ids), -1).mean(axis=1)
    per_clip = np.zeros(num_clips)
    keep = clip_ids < num_clips
    per_clip[clip_ids[keep]] = scores[keep]
    return per_clip.tolist()
