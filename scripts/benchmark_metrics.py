"""Time the vectorised QVHighlights metrics against a naive per-query loop on the 1550-query val reference file.

    python scripts/benchmark_metrics.py [--predictions P.jsonl] [--ground-truth G.jsonl] [--repeats 5]

The naive scorer below follows the official evaluator's structure (one query, one threshold, one prediction at a
time, small numpy arrays per query, single process) and lives here on purpose: it is a yardstick, not package
code. Both scorers must print the same numbers; the script checks that before reporting the times.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from td_detr.metrics import evaluate_submission, read_jsonl

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "qvhighlights"
MAP_THRESHOLDS = [round(float(t), 2) for t in np.linspace(0.5, 0.95, 10)]
R1_THRESHOLDS = MAP_THRESHOLDS
BUCKETS = {"full": None, "long": (30, 150), "middle": (10, 30), "short": (0, 10)}
LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}


def _fmt(value):
    return float(f"{value:.2f}")


def _cross_iou(pred, gts):
    inter = np.clip(np.minimum(pred[1], gts[:, 1]) - np.maximum(pred[0], gts[:, 0]), 0, None)
    union = (pred[1] - pred[0]) + (gts[:, 1] - gts[:, 0]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def _query_ap(preds, gts):
    preds = sorted(preds[:10], key=lambda w: -w[2])
    gts = np.asarray(gts, dtype=float)
    tp = np.zeros((len(MAP_THRESHOLDS), len(preds)))
    fp = np.zeros_like(tp)
    taken = np.full((len(MAP_THRESHOLDS), len(gts)), -1)
    for k, pred in enumerate(preds):
        ious = _cross_iou(pred, gts)
        for t, thr in enumerate(MAP_THRESHOLDS):
            for j in ious.argsort()[::-1]:
                if ious[j] < thr:
                    fp[t, k] = 1
                    break
                if taken[t, j] >= 0:
                    continue
                tp[t, k], taken[t, j] = 1, k
                break
            if tp[t, k] == 0 and fp[t, k] == 0:
                fp[t, k] = 1
    tp_sum, fp_sum = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    recall, precision = tp_sum / len(gts), tp_sum / (tp_sum + fp_sum)
    aps = []
    for t in range(len(MAP_THRESHOLDS)):
        mp = np.hstack([[0], precision[t], [0]])
        mr = np.hstack([[0], recall[t], [1]])
        for i in range(len(mp) - 1)[::-1]:
            mp[i] = max(mp[i], mp[i + 1])
        idx = np.where(mr[1:] != mr[:-1])[0] + 1
        aps.append(np.sum((mr[idx] - mr[idx - 1]) * mp[idx]))
    return aps


def _pr_curve_ap(y_true, y_score):
    if len(set(y_true.tolist())) == 1:
        return float(y_true[0] != 0)
    order = np.argsort(y_score, kind="mergesort")[::-1]
    y_score, y_true = y_score[order], y_true[order]
    ends = np.r_[np.where(np.diff(y_score))[0], len(y_true) - 1]
    tps = np.cumsum(y_true)[ends]
    fps = 1 + ends - tps
    precision = np.hstack([(tps / (tps + fps))[::-1], 1])
    recall = np.hstack([(tps / tps[-1])[::-1], 0]).astype(np.float32)
    for i in range(1, len(precision)):
        precision[i] = max(precision[i - 1], precision[i])
    return np.mean(precision[np.where(np.diff(recall))])


def naive_evaluate(submission, ground_truth, clip_length=2.0):
    """Per-query loops, official structure; returns the official brief plus the per-bucket dicts."""
    gt_by_qid = {d["qid"]: d for d in ground_truth}
    metrics = {}
    for name, bounds in BUCKETS.items():
        ious, aps = [], []
        for d in submission:
            gts = gt_by_qid[d["qid"]]["relevant_windows"]
            if bounds is not None:
                gts = [w for w in gts if bounds[0] < w[1] - w[0] <= bounds[1]]
            if not gts:
                continue
            top = d["pred_relevant_windows"][0]
            best = gts[int(np.argmax(_cross_iou(top, np.asarray(gts, dtype=float))))]
            inter = max(0, min(top[1], best[1]) - max(top[0], best[0]))
            hull = max(top[1], best[1]) - min(top[0], best[0])
            ious.append(inter / hull if hull else 0.0)
            aps.append(_query_ap(d["pred_relevant_windows"], gts))
        per_threshold = np.mean(aps, axis=0)
        mean_ap = {str(t): _fmt(100 * v) for t, v in zip(MAP_THRESHOLDS, per_threshold)}
        mean_ap["average"] = _fmt(100 * np.mean(per_threshold))
        recall = {str(t): _fmt(100 * np.mean(np.array(ious) >= t)) for t in R1_THRESHOLDS}
        metrics[name] = {"MR-mAP": mean_ap, "MR-R1": recall}
    for level_name, level in LEVELS.items():
        hits, aps = [], []
        for d in submission:
            gt = gt_by_qid[d["qid"]]
            labels = np.zeros((int(gt["duration"] / clip_length), 3))
            labels[gt["relevant_clip_ids"]] = gt["saliency_scores"]
            labels = (labels >= level).astype(float)
            pred = np.asarray(d["pred_saliency_scores"], dtype=float)
            top = int(np.argmax(pred))
            hits.append(labels[top].max() if top < len(labels) else 0.0)
            pred = np.concatenate([pred, np.zeros(max(0, len(labels) - len(pred)))])[: len(labels)]
            for annotator in range(3):
                aps.append(_pr_curve_ap(labels[:, annotator], pred))
        metrics[f"HL-min-{level_name}"] = {"HL-mAP": _fmt(100 * np.mean(aps)), "HL-Hit1": _fmt(100 * np.mean(hits))}
    return metrics


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=Path, default=DATA / "reference_predictions" / "sample_val_preds.jsonl")
    parser.add_argument("--ground-truth", type=Path, default=DATA / "highlight_val_release.jsonl")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    load_time, (submission, ground_truth) = _median_time(
        lambda: (read_jsonl(args.predictions), read_jsonl(args.ground_truth)), 1
    )
    fast_time, fast = _median_time(lambda: evaluate_submission(submission, ground_truth), args.repeats)
    slow_time, slow = _median_time(lambda: naive_evaluate(submission, ground_truth), max(1, args.repeats // 2))
    mismatches = [
        (name, part, key) for name, values in slow.items() for part, sub in values.items()
        for key, value in (sub.items() if isinstance(sub, dict) else [(None, sub)])
        if (fast[name][part][key] if key is not None else fast[name][part]) != value
    ]
    print(f"queries: {len(submission)}  (reading both JSONL files: {load_time:.3f} s)")
    print(f"vectorised evaluate_submission: {fast_time:.3f} s (median of {args.repeats})")
    print(f"naive per-query loop:           {slow_time:.3f} s (median of {max(1, args.repeats // 2)})")
    print(f"speed-up: {slow_time / fast_time:.1f}x; numbers identical: {not mismatches}")
    if mismatches:
        print("mismatches:", mismatches[:10])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
