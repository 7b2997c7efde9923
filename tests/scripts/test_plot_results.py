"""scripts/plot_results.py: each plot returns a figure with the expected elements and writes a non-empty PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
from matplotlib.container import BarContainer  # noqa: E402
from script_utils import load_script  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def plots():
    return load_script("plot_results")


def _stats(mean):
    return {"mean": mean, "std": 1.5, "values": [mean - 1.5, mean + 1.5]}


def _setting(label, base):
    main = {"MR-full-R1@0.5": _stats(base + 10), "MR-full-R1@0.7": _stats(base), "MR-full-mAP": _stats(base + 5)}
    spurious = {"Spurious-R1@0.5": _stats(base / 2), "Spurious-R1@0.7": _stats(base / 3), "Spurious-mAP": _stats(base / 4)}
    return {"label": label, "seeds": [0, 1], "metrics": {"iid": main, "shifted": main, "spurious": spurious,
                                                         "dynamic_context": main}}


@pytest.fixture
def summary():
    keys = ["baseline", "synthesis_random", "synthesis_similarity", "dynamics_only", "full", "alpha_0.3", "alpha_0.5"]
    settings = {key: _setting(key.replace("_", " "), 20.0 + 3 * i) for i, key in enumerate(keys)}
    groups = {
        "components": [{"label": settings[k]["label"], "key": k, "x": None} for k in keys[:5]],
        "alpha": [{"label": "α=0.7", "key": "full", "x": 0.7}, {"label": "α=0.3", "key": "alpha_0.3", "x": 0.3},
                  {"label": "α=0.5", "key": "alpha_0.5", "x": 0.5}],
        "beta": [],
        "transfer": [],
    }
    return {"meta": {}, "settings": settings, "groups": groups}


def _png(path: Path) -> bytes:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    return data


def test_component_bars_one_per_setting_with_error_bars(plots, summary, tmp_path):
    figure = plots.plot_bars(summary, "components", tmp_path / "bars.png")
    _png(tmp_path / "bars.png")
    axes = figure.axes
    assert len(axes) == 3  # iid, shifted, spurious
    for ax, split, key in zip(axes, ("iid", "shifted", "spurious"), ("MR-full-mAP", "MR-full-mAP", "Spurious-mAP")):
        bars = [p for p in ax.patches if p.get_gid() == "bar"]
        assert len(bars) == 5
        expected = [summary["settings"][row["key"]]["metrics"][split][key]["mean"] for row in summary["groups"]["components"]]
        assert [bar.get_height() for bar in bars] == pytest.approx(expected)
        container = next(c for c in ax.containers if isinstance(c, BarContainer))
        segments = container.errorbar.lines[2][0].get_segments()  # one vertical segment per bar: mean ± std
        assert [seg[1][1] - seg[0][1] for seg in segments] == pytest.approx([3.0] * 5)


def test_sweep_sorted_by_value_one_line_per_metric(plots, summary, tmp_path):
    figure = plots.plot_sweep(summary, "alpha", tmp_path / "alpha.png")
    _png(tmp_path / "alpha.png")
    for ax in figure.axes:
        lines = [line for line in ax.lines if line.get_gid() == "sweep-line"]
        assert len(lines) == 3  # R1@0.5, R1@0.7, mAP
        assert list(lines[0].get_xdata()) == [0.3, 0.5, 0.7]
    mAP = [line for line in figure.axes[0].lines if line.get_gid() == "sweep-line"][2]
    assert list(mAP.get_ydata()) == pytest.approx([40.0, 43.0, 37.0])  # alpha_0.3, alpha_0.5, full (base + 5)
    with pytest.raises(ValueError, match="beta"):
        plots.plot_sweep(summary, "beta")


@pytest.mark.parametrize("top, windows, iou", [
    ([0.0, 10.0], [[5.0, 15.0]], 5 / 15),  # partial overlap: intersection / union
    ([0.0, 10.0], [[40.0, 50.0], [2.0, 10.0]], 0.8),  # the best of several ground-truth windows
    ([0.0, 4.0], [[6.0, 8.0]], 0.0),  # disjoint
    ([0.0, 4.0], [[4.0, 8.0]], 0.0),  # touching
    ([3.0, 3.0], [[0.0, 6.0]], 0.0),  # zero-length prediction
    ([3.0, 3.0], [[3.0, 3.0]], 0.0),  # both zero-length: 0/0 counts as 0, as in the official R1
])
def test_top1_iou_edge_cases(plots, top, windows, iou):
    prediction = {"pred_relevant_windows": [[*top, 0.9], [0.0, 100.0, 0.1]]}  # only the top-ranked window counts
    assert plots.top1_iou(prediction, {"relevant_windows": windows}) == pytest.approx(iou)


def test_example_draws_ground_truth_cue_decoy_and_top_k_windows(plots, tmp_path):
    annotation = {"qid": 7, "query": "a man is cooking", "vid": "v", "duration": 40.0, "relevant_windows": [[10.0, 16.0]],
                  "cue_windows": [[0.0, 4.0], [6.0, 10.0]], "decoy_windows": [[4.0, 6.0]]}
    other = {**annotation, "qid": 8, "relevant_windows": [[30.0, 34.0]]}
    (tmp_path / "gt.jsonl").write_text("\n".join(json.dumps(a) for a in (annotation, other)) + "\n")
    saliency = [0.1 * i for i in range(20)]
    good = {"qid": 7, "pred_relevant_windows": [[10.0, 16.0, 0.9], [8.0, 20.0, 0.5], [0.0, 6.0, 0.3], [2.0, 4.0, 0.1]],
            "pred_saliency_scores": saliency}
    bad = {**good, "pred_relevant_windows": [[4.0, 6.0, 0.8], [10.0, 16.0, 0.4], [0.0, 2.0, 0.2]]}
    files = {}
    for name, records in (("baseline", [bad, {**bad, "qid": 8}]), ("full", [good, {**bad, "qid": 8}])):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("\n".join(json.dumps(r) for r in records) + "\n")

    predictions = {name: plots.read_jsonl(path) for name, path in files.items()}
    annotations = plots.read_jsonl(tmp_path / "gt.jsonl")
    assert plots.top1_iou(predictions["full"][7], annotation) == 1.0
    assert plots.top1_iou(predictions["baseline"][7], annotation) == 0.0
    assert plots.choose_example(annotations, predictions, "baseline", "full") == 7

    figure = plots.plot_example(tmp_path / "gt.jsonl", files, qid=7, top_k=3, output=tmp_path / "example.png")
    _png(tmp_path / "example.png")
    assert len(figure.axes) == 2
    for ax in figure.axes:
        gids = [artist.get_gid() for artist in ax.patches]
        assert gids.count("pred-window") == 3 and gids.count("gt-window") == 1
        assert gids.count("cue-window") == 2 and gids.count("decoy-window") == 1
        curve = next(line for line in ax.lines if line.get_gid() == "saliency")
        assert list(curve.get_xdata()) == pytest.approx([1.0 + 2.0 * i for i in range(20)])
    top = next(p for p in figure.axes[1].patches if p.get_gid() == "pred-window")
    assert (top.get_x(), top.get_width()) == (10.0, 6.0)  # the full model's rank-1 window, in seconds
