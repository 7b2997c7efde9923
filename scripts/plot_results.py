"""Plots of the ablations of ``scripts/ablate.py`` (matplotlib, written as PNG; independent of td_detr.visualize).

* :func:`plot_sweep`: metrics vs α or β (Tables S1 / S2), one panel per evaluation split, mean ± std error bars;
* :func:`plot_bars`: one bar per setting (components, transfer), one panel per split, std error bars;
* :func:`plot_example`: one query of the shifted split: each model's predicted clip saliency over time, the
  ground-truth window(s), the cue and decoy blocks of the spurious data, and the model's top-k predicted windows.

Every function returns the ``matplotlib.figure.Figure`` and writes it when given ``output``. Drawn elements carry a
``gid`` ("bar", "gt-window", "pred-window", "cue-window", "decoy-window") so tests can count them.

    python scripts/plot_results.py --results-dir runs/ablation --output-dir docs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from td_detr.metrics import temporal_iou_paired

REPO = Path(__file__).resolve().parents[1]
METRICS = {
    "iid": ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP"),
    "shifted": ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP"),
    "spurious": ("Spurious-R1@0.5", "Spurious-R1@0.7", "Spurious-mAP"),
}
SPLIT_TITLES = {
    "iid": "validation_iid (cue next to moment)",
    "shifted": "validation (cue moved to a decoy)",
    "spurious": "masked moment: Spurious ↓ (lower is better)",
}
METRIC_LABELS = {"R1@0.5": "R1@0.5", "R1@0.7": "R1@0.7", "mAP": "mAP"}


def _short(metric: str) -> str:
    return metric.split("-")[-1]


def _save(figure: Figure, output) -> Figure:
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(output, dpi=110, bbox_inches="tight")
    return figure


def _rows(summary: dict, group: str) -> list[dict]:
    rows = summary["groups"].get(group) or []
    if not rows:
        raise ValueError(f"summary has no rows for group {group!r}")
    return rows


def plot_sweep(summary: dict, group: str, output=None, splits=("iid", "shifted", "spurious")) -> Figure:
    """Metric vs the swept value (group "alpha" or "beta"): one panel per split, one line per metric."""
    rows = sorted(_rows(summary, group), key=lambda r: r["x"])
    xs = [r["x"] for r in rows]
    symbol = {"alpha": "α", "beta": "β"}.get(group, group)
    figure = Figure(figsize=(4.2 * len(splits), 3.6), layout="constrained")
    axes = figure.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits):
        for metric in METRICS[split]:
            stats = [summary["settings"][r["key"]]["metrics"][split][metric] for r in rows]
            drawn = ax.errorbar(xs, [s["mean"] for s in stats], yerr=[s["std"] for s in stats], marker="o",
                                capsize=3, label=_short(metric))
            drawn.lines[0].set_gid("sweep-line")  # the data line (not its caps)
        ax.set_title(SPLIT_TITLES[split], fontsize=9)
        ax.set_xlabel(symbol)
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)
    seeds = _seed_note(summary, [r["key"] for r in rows])
    figure.suptitle(f"Spurious synthetic data: metrics vs {symbol} (mean ± std, {seeds})", fontsize=10)
    return _save(figure, output)


def plot_bars(summary: dict, group: str, output=None, metric: str = "mAP",
              splits=("iid", "shifted", "spurious")) -> Figure:
    """One bar per setting of `group` in each split's panel (the chosen metric: "mAP", "R1@0.5" or "R1@0.7"),
    std error bars; the settings' colours are shared across panels."""
    rows = _rows(summary, group)
    colours = [f"C{i}" for i in range(len(rows))]
    figure = Figure(figsize=(4.0 * len(splits), 3.8), layout="constrained")
    axes = figure.subplots(1, len(splits), squeeze=False)[0]
    positions = list(range(len(rows)))
    for ax, split in zip(axes, splits):
        key = next(m for m in METRICS[split] if _short(m) == metric)
        stats = [summary["settings"][r["key"]]["metrics"][split][key] for r in rows]
        bars = ax.bar(positions, [s["mean"] for s in stats], yerr=[s["std"] for s in stats], capsize=4,
                      color=colours, edgecolor="black", linewidth=0.5)
        for bar in bars:
            bar.set_gid("bar")
        for x, s in zip(positions, stats):
            ax.annotate(f"{s['mean']:.1f}", (x, s["mean"] + s["std"]), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(positions, [str(i + 1) for i in positions])
        ax.set_title(f"{SPLIT_TITLES[split]}\n{key}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("score (%)")
    figure.legend([Patch(color=c) for c in colours], [f"{i + 1}: {r['label']}" for i, r in enumerate(rows)],
                  loc="outside lower center", ncol=min(3, len(rows)), fontsize=8)
    figure.suptitle(f"{group}: {metric} per split (mean ± std, {_seed_note(summary, [r['key'] for r in rows])})",
                    fontsize=10)
    return _save(figure, output)


def _seed_note(summary: dict, keys) -> str:
    counts = sorted({len(summary["settings"][k]["seeds"]) for k in keys})
    return f"{'/'.join(map(str, counts))} seed{'s' if counts != [1] else ''}"


# ------------------------------------------------------------------------------------------------------------------
# One example prediction
# ------------------------------------------------------------------------------------------------------------------


def read_jsonl(path) -> dict:
    """{qid: record} of a JSONL file."""
    with open(path) as handle:
        return {record["qid"]: record for record in map(json.loads, filter(str.strip, handle))}


def top1_iou(prediction: dict, annotation: dict) -> float:
    """Best IoU between the top-ranked predicted window and any ground-truth window (the official R1 IoU; 0/0 = 0)."""
    start, end = prediction["pred_relevant_windows"][0][:2]
    gt = np.asarray(annotation["relevant_windows"], dtype=float)
    return float(temporal_iou_paired(start, end, gt[:, 0], gt[:, 1]).max())


def choose_example(annotations: dict, predictions: dict, reference: str, target: str) -> int:
    """The qid where `target`'s top-1 IoU with the ground truth most exceeds `reference`'s (ties: smallest qid).
    A deliberately selected illustration, not a typical case: the aggregate tables are the evidence."""
    common = sorted(set(predictions[reference]) & set(predictions[target]) & set(annotations))
    if not common:
        raise ValueError("no query is present in both prediction files and the annotations")
    gain = {q: top1_iou(predictions[target][q], annotations[q]) - top1_iou(predictions[reference][q], annotations[q])
            for q in common}
    return max(common, key=lambda q: (gain[q], -q))


def plot_example(annotation_file, prediction_files: dict, qid=None, top_k: int = 3, clip_length: float = 2.0,
                 output=None) -> Figure:
    """One query, one panel per model (`prediction_files`: {label: predictions.jsonl}): the predicted saliency per
    clip over time, ground-truth window(s) (green), cue (grey) and decoy (orange) blocks when the annotation has
    them, and the model's `top_k` windows as bars below the curve (rank and score written on them). `qid=None`:
    the first query of the annotation file."""
    annotations = read_jsonl(annotation_file)
    predictions = {label: read_jsonl(path) for label, path in prediction_files.items()}
    qid = next(iter(annotations)) if qid is None else qid
    annotation = annotations[qid]
    figure = Figure(figsize=(9, 1.0 + 2.3 * len(predictions)), layout="constrained")
    axes = figure.subplots(len(predictions), 1, squeeze=False, sharex=True)[:, 0]
    for ax, (label, records) in zip(axes, predictions.items()):
        record = records[qid]
        saliency = record["pred_saliency_scores"]
        times = [(i + 0.5) * clip_length for i in range(len(saliency))]
        ax.plot(times, saliency, color="black", linewidth=1.2, label="predicted saliency", gid="saliency")
        for kind, colour, gid in (("cue_windows", "0.6", "cue-window"), ("decoy_windows", "tab:orange", "decoy-window"),
                                  ("relevant_windows", "tab:green", "gt-window")):
            for st, ed in annotation.get(kind, []):
                ax.axvspan(st, ed, color=colour, alpha=0.3, gid=gid, linewidth=0)
        low, high = min(saliency), max(saliency)
        span = (high - low) or 1.0
        height = 0.12 * span
        for rank, (st, ed, score) in enumerate(record["pred_relevant_windows"][:top_k]):
            y = low - (rank + 1) * 1.3 * height
            ax.add_patch(Rectangle((st, y), ed - st, height, color=f"C{rank}", alpha=0.85, gid="pred-window"))
            ax.text(st, y + height / 2, f" #{rank + 1} {score:.2f}", va="center", ha="left", fontsize=7)
        ax.set_ylim(low - (top_k + 1) * 1.3 * height, high + 0.1 * span)
        iou = top1_iou(record, annotation)
        ax.set_title(f"{label}: top-1 [{record['pred_relevant_windows'][0][0]:.0f}, "
                     f"{record['pred_relevant_windows'][0][1]:.0f}] s, IoU with GT {iou:.2f}", fontsize=9)
        ax.set_ylabel("saliency")
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, annotation["duration"])
    legend = [Patch(color="tab:green", alpha=0.3, label="ground truth"),
              Patch(color="0.6", alpha=0.3, label="cue blocks"), Patch(color="tab:orange", alpha=0.3, label="decoy"),
              *(Patch(color=f"C{r}", label=f"prediction #{r + 1}") for r in range(top_k))]
    figure.legend(handles=legend, loc="outside lower center", ncol=3 + top_k, fontsize=8)
    figure.suptitle(f"qid {qid}: \"{annotation['query']}\" ({annotation['duration']:.0f} s)", fontsize=10)
    return _save(figure, output)


# ------------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------------


def plot_all(results_dir: Path, output_dir: Path, seed: int = 0, reference: str = "baseline",
             target: str = "full", prefix: str = "ablation_") -> list[Path]:
    """Every plot of an ablation folder into `output_dir` (file names start with `prefix`); returns the written
    files."""
    summary = json.loads((results_dir / "summary.json").read_text())
    written = []
    for group in ("alpha", "beta"):
        if len(summary["groups"].get(group) or []) > 1:  # a sweep of one value (the full run alone) is no plot
            written.append(output_dir / f"{prefix}{group}.png")
            plot_sweep(summary, group, written[-1])
    for group in ("main", "components", "transfer", "width_256"):
        if summary["groups"].get(group):
            written.append(output_dir / f"{prefix}{group}.png")
            plot_bars(summary, group, written[-1])
    files = {label: results_dir / "predictions" / f"{key}__seed{seed}__validation.jsonl"
             for label, key in ((summary["settings"].get(reference, {}).get("label", reference), reference),
                                (summary["settings"].get(target, {}).get("label", target), target))}
    if all(path.is_file() for path in files.values()):
        annotation_file = results_dir / "data" / "validation.jsonl"
        info = json.loads((results_dir / "data" / "dataset_info.json").read_text())
        annotations = read_jsonl(annotation_file)
        predictions = {key: read_jsonl(path) for key, path in zip((reference, target), files.values())}
        qid = choose_example(annotations, predictions, reference, target)
        # The earlier study's file kept its name (docs/RESULTS.md links it).
        written.append(output_dir / ("example_prediction.png" if prefix == "ablation_" else f"{prefix}example_prediction.png"))
        plot_example(annotation_file, files, qid=qid, clip_length=info["clip_length"], output=written[-1])
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", type=Path, default=REPO / "runs" / "ablation")
    parser.add_argument("--output-dir", type=Path, default=REPO / "docs")
    parser.add_argument("--seed", type=int, default=0, help="seed whose predictions the example plot shows")
    parser.add_argument("--prefix", default="ablation_", help="start of every file name (default: ablation_)")
    args = parser.parse_args(argv)
    for path in plot_all(args.results_dir, args.output_dir, seed=args.seed, prefix=args.prefix):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
