"""A picture of one prediction: the per-clip saliency curve over time, the top predicted windows as shaded spans
labelled with rank and score, and the ground-truth windows as a band along the bottom.

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global backend switch, safe in threads
and on headless machines) at a fixed size, so every PNG is ``FIGURE_SIZE × DPI`` pixels.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import TDDetrInputError

FIGURE_SIZE = (10.0, 3.2)  # inches
DPI = 100  # → 1000 × 320 pixels
_SPAN_COLOURS = ("tab:orange", "tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
_GROUND_TRUTH_COLOUR = "tab:green"


def _window_rows(windows) -> np.ndarray:
    """[n, 3] (start, end, score) from ``[[start, end, score], ...]`` or ``[{"start", "end", "score"}, ...]``."""
    rows = [(w["start"], w["end"], w["score"]) if isinstance(w, dict) else tuple(w)[:3] for w in windows]
    rows = np.array(rows, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(rows).all() or (rows[:, 1] < rows[:, 0]).any():
        raise TDDetrInputError("windows must be finite [start, end, score] with start <= end")
    return rows


def prediction_figure(
    saliency: Sequence[float],
    windows,
    clip_length: float,
    *,
    ground_truth: Sequence[Sequence[float]] | None = None,
    query: str | None = None,
    top_k: int = 3,
    duration: float | None = None,
):
    """The figure `plot_prediction` saves (a ``matplotlib.figure.Figure`` with one axes). Its ``patches`` are the
    ``min(top_k, len(windows))`` predicted spans (best first) followed by one span per ground-truth window."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    saliency = np.asarray(saliency, dtype=np.float64).ravel()
    if saliency.size == 0 or not np.isfinite(saliency).all():
        raise TDDetrInputError("saliency must be a non-empty list of finite numbers, one per clip")
    rows = _window_rows(windows)
    rows = rows[np.argsort(-rows[:, 2], kind="stable")][: max(top_k, 0)]
    end_time = max(duration or 0.0, saliency.size * clip_length)

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    centres = (np.arange(saliency.size) + 0.5) * clip_length
    axes.plot(centres, saliency, color="tab:blue", linewidth=1.5, marker="o", markersize=2.5, label="saliency")
    for rank, (start, end, score) in enumerate(rows, 1):
        colour = _SPAN_COLOURS[(rank - 1) % len(_SPAN_COLOURS)]
        axes.axvspan(start, end, color=colour, alpha=0.22, linewidth=0, label=f"#{rank}")
        # label at data x, axes y; staggered so overlapping windows keep readable labels
        axes.text((start + end) / 2, 0.97 - 0.09 * (rank - 1), f"#{rank} {score:.2f}", color=colour, ha="center",
                  va="top", fontsize=8, fontweight="bold", transform=axes.get_xaxis_transform(),
                  bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.8))
    for index, (start, end) in enumerate(ground_truth or []):
        axes.axvspan(start, end, ymin=0, ymax=0.05, color=_GROUND_TRUTH_COLOUR, alpha=0.9, linewidth=0,
                     label="ground truth" if index == 0 else None)
    axes.set_xlim(0, end_time)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("saliency")
    if query:
        axes.set_title(textwrap.shorten(query, width=120, placeholder=" …"), fontsize=10)
    axes.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    axes.grid(axis="y", alpha=0.3)
    figure.subplots_adjust(left=0.075, right=0.86, bottom=0.16, top=0.88)  # fixed layout: same pixels every time
    return figure


def plot_prediction(
    saliency: Sequence[float],
    windows,
    clip_length: float,
    *,
    ground_truth: Sequence[Sequence[float]] | None = None,
    query: str | None = None,
    top_k: int = 3,
    duration: float | None = None,
    path,
) -> Path:
    """Draw one prediction to a PNG of ``FIGURE_SIZE × DPI`` pixels and return its path.

    Args:
        saliency: one score per clip (``pred_saliency_scores`` or the pipeline's ``saliency``).
        windows: ``[[start, end, score], ...]`` (``pred_relevant_windows``) or the pipeline's ``[{"start", "end",
            "score"}, ...]``; the ``top_k`` best are drawn.
        clip_length: seconds per clip.
        ground_truth: ``[[start, end], ...]`` seconds, drawn as a green band when given.
        query: the query text, used as the title.
        duration: seconds shown on the time axis (default: clips × clip length).
        path: where the PNG goes (folders are created).
    """
    figure = prediction_figure(saliency, windows, clip_length, ground_truth=ground_truth, query=query, top_k=top_k,
                               duration=duration)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)
    return path


__all__ = ["DPI", "FIGURE_SIZE", "plot_prediction", "prediction_figure"]
