"""A deliberately naive QVHighlights evaluator for the tests: plain Python loops, one query at a time, written
straight from the definitions in reference-qd-detr.md section 6 (and the CG-DETR / TD-DETR additions of section 7).

Only the per-GT descending-IoU order uses ``np.argsort(ious)[::-1]``, because that IS the definition the official
code uses for IoU ties. Everything else is lists and floats.
"""

from __future__ import annotations

import math

import numpy as np

MAP_THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
R1_THRESHOLDS = [0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
BUCKETS = {"full": None, "short": (0, 10), "middle": (10, 30), "long": (30, 150)}
LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}


def fmt(value: float) -> float:
    return float(f"{value:.2f}")


def iou_true_union(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union != 0 else math.nan  # numpy gives NaN for 0/0


def iou_hull(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    hull = max(a[1], b[1]) - min(a[0], b[0])
    return inter / hull if hull != 0 else 0.0


def top1_iou(pred_windows, gt_windows) -> float:
    if not pred_windows:
        return 0.0
    top = pred_windows[0]
    best, best_iou = 0, None
    for j, gt in enumerate(gt_windows):  # first maximum; NaN counts as the maximum (np.argmax)
        value = iou_true_union(top, gt)
        if best_iou is None or (not math.isnan(best_iou) and (math.isnan(value) or value > best_iou)):
            best, best_iou = j, value
    return iou_hull(top, gt_windows[best])


def voc_ap(precision, recall) -> float:
    mp = [0.0] + list(precision) + [0.0]
    mr = [0.0] + list(recall) + [1.0]
    for i in range(len(mp) - 2, -1, -1):
        mp[i] = max(mp[i], mp[i + 1])
    return sum((mr[i] - mr[i - 1]) * mp[i] for i in range(1, len(mr)) if mr[i] != mr[i - 1])


def detection_ap(pred_windows, gt_windows, thresholds=MAP_THRESHOLDS) -> list[float]:
    preds = sorted(pred_windows[:10], key=lambda w: -w[2])  # stable, like list.sort in the official code
    aps = []
    for thr in thresholds:
        taken = [False] * len(gt_windows)
        tp, fp = [], []
        for pred in preds:
            ious = [iou_true_union(pred, gt) for gt in gt_windows]
            matched = False
            for j in np.argsort(np.array(ious))[::-1]:
                if ious[j] < thr:
                    break
                if taken[j]:
                    continue
                taken[j] = matched = True
                break
            tp.append(1 if matched else 0)
            fp.append(0 if matched else 1)
        precision, recall, ctp, cfp = [], [], 0, 0
        for t, f in zip(tp, fp):
            ctp, cfp = ctp + t, cfp + f
            precision.append(ctp / (ctp + cfp))
            recall.append(ctp / len(gt_windows))
        aps.append(voc_ap(precision, recall))
    return aps


def pr_curve_ap(y_true, y_score) -> float:
    """The official get_ap on sklearn's precision_recall_curve, from the definitions."""
    if len(set(y_true)) == 1:
        return 0.0 if y_true[0] == 0 else 1.0
    positives = sum(y_true)
    precision, recall = [], []
    for threshold in sorted(set(y_score), reverse=True):  # one point per distinct score
        chosen = [i for i, s in enumerate(y_score) if s >= threshold]
        tp = sum(y_true[i] for i in chosen)
        precision.append(tp / len(chosen))
        recall.append(tp / positives)
    precision, recall = precision[::-1] + [1.0], recall[::-1] + [0.0]  # sklearn order: increasing threshold
    for i in range(1, len(precision)):
        precision[i] = max(precision[i - 1], precision[i])
    picked = [precision[i] for i in range(len(recall) - 1) if recall[i + 1] != recall[i]]
    return sum(picked) / len(picked)


def evaluate(submission, ground_truth, clip_length=2.0) -> dict:
    gt_by_qid = {d["qid"]: d for d in ground_truth}
    metrics, brief = {}, {}
    if "pred_relevant_windows" in submission[0]:
        for name, bounds in BUCKETS.items():
            ious, aps = [], []
            for d in submission:
                gts = gt_by_qid[d["qid"]]["relevant_windows"]
                if bounds is not None:
                    gts = [w for w in gts if bounds[0] < w[1] - w[0] <= bounds[1]]
                if not gts:
                    continue
                ious.append(top1_iou(d["pred_relevant_windows"], gts))
                if d["pred_relevant_windows"]:
                    aps.append(detection_ap(d["pred_relevant_windows"], gts))
            if not ious:
                metrics[name] = {
                    "MR-mAP": {**{str(t): 0.0 for t in MAP_THRESHOLDS}, "average": 0.0},
                    "MR-R1": {str(t): 0.0 for t in R1_THRESHOLDS},
                    "MR-mIoU": 0.0,
                    "num_queries": 0,
                }
                continue
            per_threshold = [sum(ap[i] for ap in aps) / len(aps) if aps else 0.0 for i in range(len(MAP_THRESHOLDS))]
            mean_ap = {str(t): fmt(100 * v) for t, v in zip(MAP_THRESHOLDS, per_threshold)}
            mean_ap["average"] = fmt(100 * sum(per_threshold) / len(per_threshold))
            metrics[name] = {
                "MR-mAP": mean_ap,
                "MR-R1": {str(t): fmt(100 * sum(i >= t for i in ious) / len(ious)) for t in R1_THRESHOLDS},
                "MR-mIoU": fmt(100 * sum(ious) / len(ious)),
                "num_queries": len(ious),
            }
        for key, (bucket, metric, thr) in {
            "MR-full-mAP": ("full", "MR-mAP", "average"), "MR-full-mAP@0.5": ("full", "MR-mAP", "0.5"),
            "MR-full-mAP@0.75": ("full", "MR-mAP", "0.75"), "MR-short-mAP": ("short", "MR-mAP", "average"),
            "MR-middle-mAP": ("middle", "MR-mAP", "average"), "MR-long-mAP": ("long", "MR-mAP", "average"),
            "MR-full-R1@0.3": ("full", "MR-R1", "0.3"), "MR-full-R1@0.5": ("full", "MR-R1", "0.5"),
            "MR-full-R1@0.7": ("full", "MR-R1", "0.7"), "MR-full-mIoU": ("full", "MR-mIoU", None),
        }.items():
            value = metrics[bucket][metric]
            brief[key] = value if thr is None else value[thr]
    if "pred_saliency_scores" in submission[0] and "saliency_scores" in ground_truth[0]:
        for name, level in LEVELS.items():
            hits, aps = [], []
            for d in submission:
                gt = gt_by_qid[d["qid"]]
                num_clips = int(gt["duration"] / clip_length)
                labels = [[0, 0, 0] for _ in range(num_clips)]
                for clip, scores in zip(gt["relevant_clip_ids"], gt["saliency_scores"]):
                    labels[clip] = [1 if s >= level else 0 for s in scores]
                pred = list(d["pred_saliency_scores"])
                top = pred.index(max(pred))
                hits.append(max(labels[top]) if top < num_clips else 0)
                pred = (pred + [0.0] * num_clips)[:num_clips]
                for annotator in range(3):
                    aps.append(pr_curve_ap([row[annotator] for row in labels], pred) if num_clips else 0.0)
            metrics[f"HL-min-{name}"] = {
                "HL-mAP": fmt(100 * sum(aps) / len(aps)), "HL-Hit1": fmt(100 * sum(hits) / len(hits))
            }
            brief[f"HL-min-{name}-mAP"] = metrics[f"HL-min-{name}"]["HL-mAP"]
            brief[f"HL-min-{name}-Hit1"] = metrics[f"HL-min-{name}"]["HL-Hit1"]
    return {"brief": brief, **metrics}
