"""The README's speed table, made from `scripts/benchmark.py --json` runs (never typed): each cell is the range of a
figure, or of a ratio of two figures of the same run, over the runs given.

    python scripts/speed_table.py docs/benchmarks/run1.json docs/benchmarks/run2.json             # print it
    python scripts/speed_table.py docs/benchmarks/run1.json docs/benchmarks/run2.json --readme README.md  # rewrite it

The runs must measure our configs td_detr, td_detr_row_chunks, qd_detr_2l and qd_detr_4l with `--bf16` and
`--official-src`. `--readme` replaces the lines between the `START` and `END` markers below.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark_configs import BF16

START, END = "<!-- speed table: scripts/speed_table.py -->", "<!-- end of speed table -->"

# Columns: (heading, our config, the official model it is compared with, figure compared for the training step).
COLUMNS = [
    ("QD-DETR 2/2/2", "qd_detr_2l", "official_2l", "train_step_s"),
    ("QD-DETR 4/4/4", "qd_detr_4l", "official_4l", "train_step_s"),
    ("TD-DETR 4/4/4 (64 rows seen; per row vs official 4/4/4)", "td_detr", "official_4l", "train_step_per_row_s"),
    ("TD-DETR, row chunks of 16", "td_detr_row_chunks", "official_4l", "train_step_per_row_s"),
]


def figure(run: dict, key: str, name: str) -> float | None:
    config = run["configs"].get(key)
    return None if config is None else config["figures"][name]


def cell(runs: list[dict], value, digits: int, unit: str = "") -> str:
    """`value(run)` over the runs as "a–b" (one number when they agree at this precision); "—" when not measured."""
    values = [v for v in (value(run) for run in runs) if v is not None]
    if not values:
        return "—"
    low, high = (f"{v:,.{digits}f}" for v in (min(values), max(values)))
    return (low if low == high else f"{low}–{high}") + unit


def ratio(numerator: tuple[str, str], denominator: tuple[str, str]):
    def value(run):
        top, bottom = figure(run, *numerator), figure(run, *denominator)
        return None if top is None or bottom is None else top / bottom
    return value


def table(runs: list[dict]) -> str:
    rows = []
    for precision, suffix in (("fp32", ""), ("bf16", BF16)):
        rows.append((f"training step, ours {precision}", [
            cell(runs, lambda r, k=ours + suffix: figure(r, k, "train_step_s"), 2, " s") for _, ours, _, _ in COLUMNS]))
    for precision, suffix in (("fp32", ""), ("bf16 autocast", BF16)):
        rows.append((f"training step, official code {precision}", [
            cell(runs, lambda r, k=official + suffix: figure(r, k, "train_step_s"), 2, " s") if i < 2 else "—"
            for i, (_, _, official, _) in enumerate(COLUMNS)]))
    for ours_p, ours_s, official_p, official_s in (("fp32", "", "fp32", ""), ("bf16", BF16, "fp32", ""),
                                                   ("bf16", BF16, "bf16", BF16)):
        rows.append((f"training step: ours {ours_p} / official {official_p}", [
            cell(runs, ratio((ours + ours_s, name), (official + official_s, name)), 2)
            for _, ours, official, name in COLUMNS]))
    for ours_p, ours_s in (("fp32", ""), ("bf16", BF16)):
        rows.append((f"batch-1 inference: ours {ours_p} / official fp32", [
            cell(runs, ratio((ours + ours_s, "infer_b1_ms"), (official, "infer_b1_ms")), 2)
            for _, ours, official, _ in COLUMNS]))
    for precision, suffix in (("fp32", ""), ("bf16", BF16)):
        rows.append((f"peak training RSS, ours {precision}", [
            cell(runs, lambda r, k=ours + suffix: figure(r, k, "peak_rss_training_mb"), 0, " MB")
            for _, ours, _, _ in COLUMNS]))
        rows.append((f"peak training RSS {precision}: / QD-DETR 4/4/4 of ours", [
            cell(runs, ratio((ours + suffix, "peak_rss_training_mb"), ("qd_detr_4l" + suffix, "peak_rss_training_mb")), 2)
            for _, ours, _, _ in COLUMNS]))
    lines = ["| | " + " | ".join(heading for heading, *_ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    scoring = cell(runs, lambda r: r["scoring"]["figures"]["vectorised_s"], 2, " s")
    naive = cell(runs, lambda r: r["scoring"]["figures"]["naive_s"], 1, " s")
    loads = ", ".join(f"{r['load_average_before'][0]:.1f}→{r['load_average_after'][0]:.1f}" for r in runs)
    machine = runs[0]["machine"]
    clock = "CPU seconds of each process" if runs[0]["settings"]["clock"] == "cpu" else "wall seconds"
    lines.append("")
    lines.append(f"{len(runs)} runs of `scripts/benchmark.py` ({machine['cpu']}, {machine['nproc']} CPUs, torch "
                 f"{machine['torch']}, {machine['threads']} thread(s), {clock}, load average {loads}); scoring the "
                 f"{runs[0]['scoring']['figures']['queries']:,} QVHighlights val queries: {scoring} against {naive} "
                 "for a per-query loop.")
    return "\n".join(lines)


def rewrite(readme: Path, text: str) -> None:
    content = readme.read_text()
    if START not in content or END not in content:
        raise SystemExit(f"{readme}: the markers {START!r} and {END!r} are missing")
    head, rest = content.split(START, 1)
    readme.write_text(head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="JSON files written by scripts/benchmark.py --json")
    parser.add_argument("--readme", type=Path, help="rewrite the table between the markers of this file")
    args = parser.parse_args(argv)
    text = table([json.loads(path.read_text()) for path in args.runs])
    if args.readme:
        rewrite(args.readme, text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
