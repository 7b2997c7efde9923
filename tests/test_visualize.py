"""The prediction plot (td_detr.visualize): what is drawn, and a PNG of a fixed pixel size."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from td_detr.errors import TDDetrInputError  # noqa: E402
from td_detr.visualize import DPI, FIGURE_SIZE, plot_prediction, prediction_figure  # noqa: E402

SALIENCY = [0.1, 0.4, 0.9, 0.7, 0.2, 0.1, 0.0, 0.3]  # 8 clips of 2 s
WINDOWS = [[2.0, 6.0, 0.55], [4.0, 8.0, 0.93], [10.0, 14.0, 0.12], [0.0, 16.0, 0.71], [6.0, 8.0, 0.05]]
EXPECTED_PIXELS = (round(FIGURE_SIZE[0] * DPI), round(FIGURE_SIZE[1] * DPI))


def _spans(axes):
    return [(round(patch.get_x(), 6), round(patch.get_x() + patch.get_width(), 6)) for patch in axes.patches]


def test_draws_the_top_k_windows_best_first_then_the_ground_truth():
    figure = prediction_figure(SALIENCY, WINDOWS, 2.0, ground_truth=[[4, 8], [12, 14]], query="a query", top_k=3)
    (axes,) = figure.axes
    assert _spans(axes) == [(4.0, 8.0), (0.0, 16.0), (2.0, 6.0), (4.0, 8.0), (12.0, 14.0)]
    labels = [text.get_text() for text in axes.texts]
    assert labels == ["#1 0.93", "#2 0.71", "#3 0.55"]
    (curve,) = axes.lines
    np.testing.assert_allclose(curve.get_xdata(), np.arange(8) * 2.0 + 1.0)  # clip centres
    np.testing.assert_allclose(curve.get_ydata(), SALIENCY)
    assert axes.get_xlim() == (0.0, 16.0) and axes.get_title() == "a query"


@pytest.mark.parametrize(("top_k", "ground_truth", "expected"), [(1, None, 1), (3, [], 3), (10, [[0, 2]], 6)])
def test_span_count_is_top_k_plus_ground_truth(top_k, ground_truth, expected):
    figure = prediction_figure(SALIENCY, WINDOWS, 2.0, ground_truth=ground_truth, top_k=top_k)
    assert len(figure.axes[0].patches) == expected


def test_pipeline_windows_are_accepted_and_duration_sets_the_axis():
    as_dicts = [{"start": s, "end": e, "score": c} for s, e, c in WINDOWS]
    figure = prediction_figure(SALIENCY, as_dicts, 2.0, top_k=2, duration=20.0)
    assert _spans(figure.axes[0]) == [(4.0, 8.0), (0.0, 16.0)]
    assert figure.axes[0].get_xlim() == (0.0, 20.0)


def test_writes_a_png_of_a_fixed_size(tmp_path):
    from PIL import Image

    short = plot_prediction(SALIENCY, WINDOWS, 2.0, path=tmp_path / "a" / "short.png")
    long = plot_prediction(SALIENCY * 20, WINDOWS, 2.0, ground_truth=[[0, 4]], query="word " * 80, top_k=5,
                           path=tmp_path / "long.png")
    assert short == tmp_path / "a" / "short.png"
    for path in (short, long):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == EXPECTED_PIXELS
            assert len(np.unique(np.asarray(image.convert("L")))) > 10  # something was drawn


def test_bad_inputs():
    with pytest.raises(TDDetrInputError, match="saliency"):
        prediction_figure([], WINDOWS, 2.0)
    with pytest.raises(TDDetrInputError, match="start <= end"):
        prediction_figure(SALIENCY, [[5, 1, 0.5]], 2.0)
