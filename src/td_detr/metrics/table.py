"""Plain-text table of a metrics dict (as :func:`~td_detr.metrics.evaluate_submission` returns), for the CLI."""

from __future__ import annotations

BUCKETS = ("full", "short", "middle", "long")
LEVELS = ("Fair", "Good", "VeryGood")
MOMENT_ROWS = (  # label, metric, threshold
    ("R1@0.3", "MR-R1", "0.3"),
    ("R1@0.5", "MR-R1", "0.5"),
    ("R1@0.7", "MR-R1", "0.7"),
    ("mIoU", "MR-mIoU", None),
    ("mAP@0.5", "MR-mAP", "0.5"),
    ("mAP@0.75", "MR-mAP", "0.75"),
    ("mAP avg", "MR-mAP", "average"),
)


def _cell(value, width: int) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).rjust(width)
    return f"{float(value):.2f}".rjust(width)


def _lookup(node, *keys):
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def format_metrics_table(metrics: dict, *, width: int = 9) -> str:
    """Readable table: moment retrieval per GT-length bucket, highlight detection per saliency level.

    Accepts the nested official-style dict (missing entries print as "-", buckets without queries as "n/a"); a dict with neither section prints its
    ``brief`` (or top-level numbers) as ``key value`` lines.
    """
    lines = []
    buckets = [b for b in BUCKETS if isinstance(metrics.get(b), dict)]
    if buckets:
        lines.append("Moment retrieval".ljust(20) + "".join(b.rjust(width) for b in buckets))
        if any("num_queries" in metrics[b] for b in buckets):
            lines.append("  queries".ljust(20) + "".join(_cell(metrics[b].get("num_queries"), width) for b in buckets))
        for label, metric, threshold in MOMENT_ROWS:
            keys = (metric,) if threshold is None else (metric, threshold)
            values = [_lookup(metrics[b], *keys) for b in buckets]
            if any(v is not None for v in values):
                # an empty bucket's zeros are the official evaluators' placeholder, not a score
                lines.append(f"  {label}".ljust(20) + "".join(
                    "n/a".rjust(width) if metrics[b].get("num_queries") == 0 else _cell(v, width)
                    for b, v in zip(buckets, values)))
    levels = [lv for lv in LEVELS if isinstance(metrics.get(f"HL-min-{lv}"), dict)]
    if levels:
        if lines:
            lines.append("")
        lines.append("Highlight detection".ljust(20) + "".join(lv.rjust(width) for lv in levels))
        for label, key in (("mAP", "HL-mAP"), ("HIT@1", "HL-Hit1")):
            values = [metrics[f"HL-min-{lv}"].get(key) for lv in levels]
            lines.append(f"  {label}".ljust(20) + "".join(_cell(v, width) for v in values))
    if not lines:
        flat = metrics.get("brief", metrics)
        numbers = {k: v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        key_width = max((len(k) for k in numbers), default=0) + 2
        lines = [f"{k.ljust(key_width)}{_cell(v, 0).strip()}" for k, v in numbers.items()]
    return "\n".join(lines)
