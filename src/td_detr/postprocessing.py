"""Turn model outputs into ranked windows in seconds and per-clip saliency (reference-qd-detr.md §5).

Score of a window = softmax foreground probability. One convention (the one training uses for its span labels): a
window is in seconds of the clips the model was given, so (centre, width) × (valid clips × clip_length) → (start, end),
sorted by score, rounded to 4 decimals, clamped to [0, min(duration, clips × clip_length)] and optionally rounded to
the clip grid (half to even, as `torch.round` does in the reference post-processing). No NMS (the reference uses
none). The official code multiplies by the annotation's duration instead; the two agree whenever the features cover the
duration (QVHighlights), and only clip spans stay right for cut or windowed videos. Long videos and pooling:
`td_detr.processing_td_detr.TDDetrProcessor.post_process_moment_retrieval`.

Clamp (`TDDetrConfig.postprocess_clamp`, copied into the processor): `"duration"` (default) keeps windows inside
[0, min(duration, clips × clip_length)]; `"official"` clamps to [0, 150] s as the official TD-DETR / QD-DETR
inference does for QVHighlights and Charades-STA (`PostProcessorDETR(min_ts_val=0, max_ts_val=150)`), so a window
may end past a shorter video's end.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .configuration_td_detr import POSTPROCESS_CLAMPS as CLAMPS
from .span_utils import span_cxw_to_xx

OFFICIAL_MAX_TIMESTAMP = 150.0  # seconds; the official post-processor's max_ts_val for QVHighlights and Charades-STA


def _round4(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 1e4) / 1e4


def widen_short_windows(windows: torch.Tensor, upper: torch.Tensor | float, width: float) -> torch.Tensor:
    """Windows (`[..., 2]` start, end) shorter than `width` grow to the right, then to the left where `upper` (the
    end of the video, `[..., 1]` or a number) stops them."""
    start, end = windows.unbind(-1)
    upper = torch.as_tensor(upper, dtype=windows.dtype)
    short = end - start < width
    end = torch.where(short, torch.minimum(start + width, upper[..., 0] if upper.ndim else upper), end)
    start = torch.where(short, (end - width).clamp(min=0), start)
    return torch.stack((start, end), dim=-1)


@torch.no_grad()
def post_process_moment_retrieval(
    outputs, durations: Sequence[float] | torch.Tensor | None = None, clip_length: float = 2.0,
    round_to_clip: bool = True, span_seconds: Sequence[float] | torch.Tensor | None = None, clamp: str = "duration",
    min_window_clips: int = 1,
) -> list[dict]:
    """Per query `{"pred_relevant_windows": [[start_s, end_s, score], ...] (best first),
    "pred_saliency_scores": [one float per valid clip]}`.

    Args:
        outputs: a [`TDDetrMomentRetrievalOutput`] (needs `logits`, `pred_spans`, `saliency_scores`, `video_mask`).
        durations: video duration in seconds per query, only to clamp (None: the clips' span).
        clip_length: seconds per clip: the unit of the spans and the grid for `round_to_clip`.
        round_to_clip: snap window ends to multiples of `clip_length`.
        span_seconds: per query, the seconds the model's [0, 1] span stands for, instead of valid clips × clip_length
            (the official decoding passes the durations here).
        clamp: `"duration"` ([0, min(duration, clip span)]) or `"official"` ([0, 150] s, module docstring).
        min_window_clips: widen shorter windows to this many clips, inside the clamp range (0: leave them).
    """
    if clamp not in CLAMPS:
        raise ValueError(f"clamp must be one of {CLAMPS}, got {clamp!r}")
    # float64 so that the 4-decimal rounding survives the conversion to Python floats
    logits, spans = outputs.logits.double(), outputs.pred_spans.double()
    if span_seconds is None:
        span_seconds = outputs.video_mask.double().sum(dim=1).to(spans.device) * clip_length
    span_seconds = torch.as_tensor(span_seconds, dtype=torch.float64, device=spans.device).view(-1, 1, 1)
    duration = span_seconds
    if durations is not None:
        given = torch.as_tensor(durations, dtype=torch.float64, device=spans.device).view(-1, 1, 1)
        if given.shape[0] != spans.shape[0]:
            raise ValueError(f"{given.shape[0]} durations given for a batch of {spans.shape[0]}")
        if not (given > 0).all():
            raise ValueError(f"durations must be positive, got {given.view(-1).tolist()}")
        duration = torch.minimum(given, span_seconds)
    scores = logits.softmax(-1)[..., 0]
    windows = span_cxw_to_xx(spans) * span_seconds
    order = scores.argsort(dim=1, descending=True, stable=True)
    scores = _round4(scores.gather(1, order))
    windows = _round4(windows.gather(1, order.unsqueeze(-1).expand_as(windows)))
    upper = duration if clamp == "duration" else torch.full_like(duration, OFFICIAL_MAX_TIMESTAMP)
    windows = torch.minimum(windows.clamp(min=0), upper)
    if round_to_clip:
        windows = torch.round(windows / clip_length) * clip_length
        if clamp == "duration":
            windows = torch.minimum(windows, duration)
    if min_window_clips > 0:
        windows = widen_short_windows(windows, upper, min_window_clips * clip_length)
    ranked = torch.cat((windows, scores.unsqueeze(-1)), dim=-1).cpu()

    valid_lengths = outputs.video_mask.sum(dim=1).long().cpu().tolist()
    saliency = outputs.saliency_scores.float().cpu()
    return [
        {"pred_relevant_windows": ranked[i].tolist(), "pred_saliency_scores": saliency[i, :length].tolist()}
        for i, length in enumerate(valid_lengths)
    ]
