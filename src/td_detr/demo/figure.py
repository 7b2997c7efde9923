"""The demo's picture of one answer: a timeline with one lane for the ground truth and one per top predicted window
(bar labelled with its score), above the per-clip saliency curve with the annotators' scores behind it.

A bare ``matplotlib.figure.Figure`` on the Agg canvas (no pyplot state, safe in Gradio's worker threads)."""

from __future__ import annotations

import textwrap

import numpy as np

FIGURE_SIZE = (11.0, 4.6)  # inches, at 100 dpi
TRUTH_COLOUR = "#2e7d32"
WINDOW_COLOUR = "#ef6c00"
SALIENCY_COLOUR = "#1565c0"


def timeline_figure(answer, top_k: int = 5):
    """The figure of an `Answer` (`td_detr.demo.session.Answer`): its ``top_k`` best windows, ground truth and
    saliency. Lanes top to bottom: ``ground truth``, ``#1``, ``#2``, …"""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    windows = np.asarray(answer.windows, dtype=np.float64).reshape(-1, 3)[:top_k]
    saliency = np.asarray(answer.saliency, dtype=np.float64)
    end_time = max(answer.duration, len(saliency) * answer.clip_length)

    figure = Figure(figsize=FIGURE_SIZE, dpi=100)
    FigureCanvasAgg(figure)
    lanes_axes, curve_axes = figure.subplots(2, 1, sharex=True, gridspec_kw=dict(height_ratios=(1 + len(windows), 5)))
    figure.subplots_adjust(left=0.09, right=0.985, top=0.9, bottom=0.12, hspace=0.08)

    # Timeline lanes: ground truth on top, then the predicted windows by rank; the bar alpha follows the score.
    labels = ["ground truth"] + [f"#{rank}" for rank in range(1, len(windows) + 1)]
    lanes_axes.set_ylim(len(labels) - 0.5, -0.5)
    lanes_axes.set_yticks(range(len(labels)), labels, fontsize=9)
    for start, end in answer.ground_truth:
        lanes_axes.barh(0, end - start, left=start, height=0.7, color=TRUTH_COLOUR)
    if not answer.ground_truth:
        lanes_axes.text(0.5 * end_time, 0, "unknown for a free-text query", ha="center", va="center", fontsize=8,
                        color="0.45", style="italic")
    ious = answer.window_ious()
    for lane, (start, end, score) in enumerate(windows, 1):
        alpha = 0.35 + 0.65 * float(np.clip(score, 0, 1))
        lanes_axes.barh(lane, end - start, left=start, height=0.7, color=WINDOW_COLOUR, alpha=alpha)
        text = f"{score:.2f}" + (f"  IoU {ious[lane - 1]:.2f}" if ious is not None else "")
        inside = (end - start) > 0.16 * end_time
        lanes_axes.text(start + 0.5 * (end - start) if inside else end + 0.006 * end_time, lane, text, fontsize=8,
                        va="center", ha="center" if inside else "left", color="white" if inside else "0.2",
                        fontweight="bold")
    lanes_axes.tick_params(axis="y", length=0)
    lanes_axes.grid(axis="x", alpha=0.25)
    for side in ("top", "right"):
        lanes_axes.spines[side].set_visible(False)

    # Saliency: the model's per-clip score, with the ground-truth windows shaded and the annotators' mean score
    # (0-4, on its own axis) as bars behind it.
    centres = (np.arange(len(saliency)) + 0.5) * answer.clip_length
    for index, (start, end) in enumerate(answer.ground_truth):
        curve_axes.axvspan(start, end, color=TRUTH_COLOUR, alpha=0.10, linewidth=0,
                           label="ground-truth window" if index == 0 else None)
    if len(windows):
        curve_axes.axvspan(windows[0, 0], windows[0, 1], facecolor="none", edgecolor=WINDOW_COLOUR, linewidth=1.6,
                           linestyle="--", label="top window")
    extra_handles = []
    if answer.ground_truth_saliency is not None:
        annotator_axes = curve_axes.twinx()
        annotator_axes.bar(centres, answer.ground_truth_saliency, width=0.85 * answer.clip_length, color=TRUTH_COLOUR,
                           alpha=0.28, label="annotators' saliency (0-4, right axis)")
        annotator_axes.set_ylim(0, 4.4)
        annotator_axes.set_ylabel("annotators (0-4)", fontsize=9, color=TRUTH_COLOUR)
        annotator_axes.tick_params(labelsize=8, colors=TRUTH_COLOUR)
        curve_axes.set_zorder(annotator_axes.get_zorder() + 1)  # the curve in front of the bars
        curve_axes.patch.set_visible(False)
        extra_handles = [Patch(color=TRUTH_COLOUR, alpha=0.28, label="annotators' saliency (right axis)")]
    curve_axes.plot(centres, saliency, color=SALIENCY_COLOUR, linewidth=1.8, marker="o", markersize=2.5,
                    label="predicted saliency")
    low, high = float(saliency.min()), float(saliency.max())
    span = (high - low) or 1.0
    curve_axes.set_ylim(low - 0.05 * span, high + 0.4 * span)  # headroom for the legend
    curve_axes.set_xlim(0, end_time)
    curve_axes.set_xlabel("time (s)")
    curve_axes.set_ylabel("saliency", fontsize=9)
    curve_axes.tick_params(labelsize=8)
    curve_axes.grid(alpha=0.25)
    handles = curve_axes.get_legend_handles_labels()[0] + extra_handles
    curve_axes.legend(handles=handles, loc="upper left", fontsize=8, ncol=4, frameon=True, framealpha=0.85)
    title = textwrap.shorten(answer.query, width=110, placeholder=" …")
    where = f"{answer.vid} · " if answer.vid else ""
    figure.suptitle(f"“{title}”   ({where}{answer.duration:.0f} s)", fontsize=11, x=0.09, ha="left")
    return figure
