"""CLIP features of a video file and a text query, made as the QVHighlights CLIP features were (reference §1.2).

* **Decoding** uses PyAV (``av``, extra ``video``): it is maintained, binds FFmpeg's libraries directly (no subprocess,
  exact frame timestamps) and its wheels bundle FFmpeg with the common codecs, so users need no system install.
* **Frame sampling.** Clip ``k`` covers ``[k·c, (k+1)·c)`` seconds for clip length ``c`` (2 s, i.e. 0.5 fps, for
  QVHighlights models); a video of ``d`` seconds has ``ceil(d / c)`` clips, the last one possibly partial. Clip ``k`` is
  represented by **the frame on screen just before its centre** ``(k + 0.5)·c``: the last frame whose timestamp is
  strictly before the centre (the first frame if none is; the last frame for a partial last clip whose centre lies past
  the end). This is exactly the frame FFmpeg's ``fps=1/c`` filter outputs (it rounds every timestamp to the nearest
  output tick and keeps the last frame of each tick), and that filter made the original QVHighlights CLIP features, so
  the sampling reproduces theirs; the tests check it against the filter itself through PyAV's filter graph. (The only
  difference: FFmpeg emits ``round(d / c)`` frames, we keep a partial last clip whenever there is one.) Frames are
  decoded in order and only the sampled ones are converted to RGB (and turned upright when the stream carries a display
  rotation, as FFmpeg's command line does), so memory stays at one encoding batch.
* **Image features** are CLIP's projected image embeddings (``visual_projection`` of the pooled vision output) of the
  frame resized to 224 on its short side and centre-cropped to 224×224 (the checkpoint's image processor does both).
* **Text features** are the per-token outputs of CLIP's text transformer after its final layer norm and *before* the
  text projection (``text_model(...).last_hidden_state``), SOT through EOT inclusive, no padding.

The features are returned raw; the model's inputs L2-normalise every row (see `td_detr.pipeline`), as the data sets do.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TDDetrInputError

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
_TIME_EPS = 1e-6  # seconds; a frame this close to a clip centre counts as at the centre (float noise)
_FALLBACK_RATE = 25.0  # frames per second FFmpeg itself assumes for streams that state none


def _require_av():
    try:
        import av
    except ImportError:
        raise ImportError("reading video files needs PyAV: pip install 'td-detr[video]'") from None
    return av


@dataclass
class SampledFrames:
    """One RGB frame per clip. ``frames`` uint8 [clips, H, W, 3]; ``timestamps`` seconds of the chosen frames;
    ``clip_centres`` seconds each clip is sampled at; ``duration`` seconds of the video stream."""

    frames: np.ndarray
    timestamps: np.ndarray
    clip_centres: np.ndarray
    duration: float


@dataclass
class VideoFeatures:
    """CLIP image features of a video: ``features`` float32 [clips, projection_dim], one row per clip, plus where they
    came from (``timestamps`` of the sampled frames, ``duration`` and ``clip_length`` in seconds)."""

    features: np.ndarray
    timestamps: np.ndarray
    duration: float
    clip_length: float


def num_clips(duration: float, clip_length: float) -> int:
    """``ceil(duration / clip_length)``: clips covering a video, the last one possibly partial."""
    if not duration > 0:
        raise TDDetrInputError(f"video duration must be positive, got {duration}")
    return max(1, math.ceil(duration / clip_length - _TIME_EPS))


def clip_centres(duration: float, clip_length: float) -> np.ndarray:
    """Centre ``(k + 0.5)·c`` of every clip; the frame on screen just before it represents the clip."""
    return (np.arange(num_clips(duration, clip_length)) + 0.5) * float(clip_length)


def _open(path: Path):
    av = _require_av()
    if not path.is_file():
        raise TDDetrInputError(f"{path}: video file not found")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, IndexError) as error:  # FFmpeg answers garbage files with various errors
        raise TDDetrInputError(f"{path}: not a readable video file ({error})") from None
    if not container.streams.video:
        container.close()
        raise TDDetrInputError(f"{path}: the file has no video stream")
    return container


def _stream_start(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0


def _stream_duration(container, stream, path: Path) -> float:
    """Seconds of the video stream: its own duration, else the container's, else from its packet timestamps."""
    duration = 0.0
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    if duration <= 0 and stream.time_base:  # no metadata: demux a second handle (no decoding), read the last end
        with _require_av().open(str(path)) as probe:
            packets = [packet for packet in probe.demux(probe.streams.video[0]) if packet.size]
        ends = [packet.pts + (packet.duration or 0) for packet in packets if packet.pts is not None]
        if ends:
            duration = float(max(ends) * stream.time_base) - _stream_start(stream)
        elif packets:  # a raw elementary stream has no timestamps at all: frames at the nominal rate
            duration = len(packets) / float(stream.average_rate or _FALLBACK_RATE)
    if not duration > 0:
        raise TDDetrInputError(f"{path}: the video stream has zero duration (no frames)")
    return duration


def _frame_time(frame, stream, start: float, index: int) -> float:
    if frame.pts is not None and stream.time_base:
        return float(frame.pts * stream.time_base) - start
    rate = float(stream.average_rate or _FALLBACK_RATE)  # no timestamps at all: frames at the nominal rate
    return index / rate


def upright(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a frame's display rotation (PyAV's ``VideoFrame.rotation``: degrees counter-clockwise, e.g. -90 for a
    phone held upright) as FFmpeg's command line does by default, so portrait videos are not encoded sideways."""
    quarter_turns = int(round(rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


def iter_clip_frames(
    path, clip_length: float, batch_size: int = 64
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """Decode ``path`` once and yield the sampled clip frames in batches of at most ``batch_size``:
    ``(frames uint8 [n, H, W, 3], frame timestamps [n], clip centres [n], duration)``. See the module docstring for
    the sampling rule. Raises `TDDetrInputError` for missing or unreadable files, no video stream or zero duration."""
    av = _require_av()
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding every frame is the cost of long videos
        duration = _stream_duration(container, stream, path)
        start = _stream_start(stream)
        centres = clip_centres(duration, clip_length)
        chosen_frames, chosen_times, done = [], [], 0

        def take(frame, time):  # the same frame may serve several clips when the frame rate is below 1 / clip_length
            nonlocal done
            chosen_frames.append(upright(frame.to_ndarray(format="rgb24"), getattr(frame, "rotation", 0) or 0))
            chosen_times.append(time)
            done += 1

        def flush():
            batch = (np.stack(chosen_frames), np.asarray(chosen_times), centres[done - len(chosen_frames): done])
            chosen_frames.clear()
            chosen_times.clear()
            return batch

        previous, previous_time = None, 0.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                time = _frame_time(frame, stream, start, index)
                while done < len(centres) and time >= centres[done] - _TIME_EPS:
                    # this frame starts at or after the centre, so `previous` is the one on screen just before it
                    # (a centre at or before the first frame takes the first frame)
                    take(*((previous, previous_time) if previous is not None else (frame, time)))
                    if len(chosen_frames) == batch_size:
                        yield (*flush(), duration)
                if done == len(centres):
                    break
                previous, previous_time = frame, time
        except av.FFmpegError as error:
            raise TDDetrInputError(f"{path}: cannot decode the video stream ({error})") from None
        if previous is None and done < len(centres):
            raise TDDetrInputError(f"{path}: the video stream has no decodable frames")
        while done < len(centres):  # centres after the last frame: it stays on screen to the end
            take(previous, previous_time)
            if len(chosen_frames) == batch_size:
                yield (*flush(), duration)
        if chosen_frames:
            yield (*flush(), duration)
    finally:
        container.close()


def read_clip_frames(path, clip_length: float) -> SampledFrames:
    """All sampled clip frames of a video at once (fine for short videos; `iter_clip_frames` streams)."""
    batches = list(iter_clip_frames(path, clip_length, batch_size=1 << 30))
    frames, times, centres, duration = batches[0]
    return SampledFrames(frames=frames, timestamps=times, clip_centres=centres, duration=duration)


class CLIPFeatureEncoder:
    """Encode video clips and queries with a CLIP model from transformers (``CLIPModel`` + its image processor and
    tokenizer).

    Args:
        model: a ``transformers.CLIPModel``.
        image_processor: its image processor (resize 224 short side, centre-crop 224, CLIP normalisation).
        tokenizer: its tokenizer.
        batch_size: frames per forward pass of the vision tower.
    """

    def __init__(self, model, image_processor, tokenizer, batch_size: int = 64):
        self.model = model.eval()
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: str = DEFAULT_CLIP_MODEL, device=None, dtype=None, batch_size: int = 64):
        """Load any CLIP checkpoint by Hub name or local path (default ``openai/clip-vit-base-patch32``, the model of
        the QVHighlights CLIP features)."""
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        try:
            model = CLIPModel.from_pretrained(str(name_or_path), dtype=dtype)
            image_processor = AutoImageProcessor.from_pretrained(str(name_or_path))
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        except (OSError, ValueError) as error:
            raise TDDetrInputError(f"cannot load a CLIP model from {str(name_or_path)!r}: {error}") from None
        if device is not None:
            model = model.to(device)
        return cls(model, image_processor, tokenizer, batch_size=batch_size)

    @property
    def device(self):
        return self.model.device

    @property
    def image_feature_size(self) -> int:
        """Width of the image features (CLIP's projection dim, 512 for ViT-B/32)."""
        return self.model.config.projection_dim

    @property
    def text_feature_size(self) -> int:
        """Width of the text token features (the text tower's hidden size, 512 for ViT-B/32)."""
        return self.model.config.text_config.hidden_size

    def encode_frames(self, frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Projected CLIP image embeddings of RGB uint8 frames [n, H, W, 3] → float32 [n, projection_dim]."""
        import torch

        outputs = []
        with torch.no_grad():
            for first in range(0, len(frames), self.batch_size):
                batch = list(frames[first: first + self.batch_size])
                pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
                pixels = pixels.to(self.device, self.model.dtype)
                pooled = self.model.vision_model(pixel_values=pixels).pooler_output
                outputs.append(self.model.visual_projection(pooled).float().cpu())
        return torch.cat(outputs).numpy()

    def encode_video(self, path, clip_length: float = 2.0) -> VideoFeatures:
        """One CLIP image embedding per clip of ``clip_length`` seconds: float32 [ceil(duration / clip_length),
        projection_dim]. Decoding and encoding are interleaved batch by batch."""
        features, times, duration = [], [], 0.0
        for frames, frame_times, _, duration in iter_clip_frames(path, clip_length, self.batch_size):
            features.append(self.encode_frames(frames))
            times.append(frame_times)
        return VideoFeatures(np.concatenate(features), np.concatenate(times), duration, float(clip_length))

    def encode_text(self, queries: str | Sequence[str]) -> np.ndarray | list[np.ndarray]:
        """Per-token text features [tokens, hidden] (SOT..EOT, unprojected, after the final layer norm) of one query,
        or a list of them for a list of queries (encoded as one padded batch; CLIP's causal attention makes the
        valid tokens independent of the padding)."""
        import torch

        single = isinstance(queries, str)
        texts = [queries] if single else list(queries)
        if not texts or any(not isinstance(text, str) or not text.strip() for text in texts):
            raise TDDetrInputError(f"queries must be non-empty strings, got {queries!r}")
        max_length = min(self.tokenizer.model_max_length, self.model.config.text_config.max_position_embeddings)
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        tokens = {key: value.to(self.device) for key, value in tokens.items() if key in ("input_ids", "attention_mask")}
        with torch.no_grad():
            hidden = self.model.text_model(**tokens).last_hidden_state.float().cpu().numpy()
        lengths = tokens["attention_mask"].sum(dim=1).tolist()
        per_query = [hidden[row, :length] for row, length in enumerate(lengths)]
        return per_query[0] if single else per_query


def load_clip_encoder(clip_model=None, device=None, batch_size: int = 64) -> CLIPFeatureEncoder:
    """A `CLIPFeatureEncoder` from a name or path (default `DEFAULT_CLIP_MODEL`) or an existing encoder."""
    if isinstance(clip_model, CLIPFeatureEncoder):
        if device is not None:
            clip_model.model.to(device)
        return clip_model
    return CLIPFeatureEncoder.from_pretrained(clip_model or DEFAULT_CLIP_MODEL, device=device, batch_size=batch_size)


__all__ = [
    "DEFAULT_CLIP_MODEL",
    "CLIPFeatureEncoder",
    "SampledFrames",
    "VideoFeatures",
    "clip_centres",
    "iter_clip_frames",
    "load_clip_encoder",
    "num_clips",
    "read_clip_frames",
    "upright",
]
