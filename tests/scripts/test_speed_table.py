"""`scripts/speed_table.py`: the README's speed table is the one made from the committed benchmark runs
(docs/benchmarks/*.json), every cell a range over the runs of a figure or of a same-run ratio."""

from __future__ import annotations

import json
from pathlib import Path

from script_utils import load_script

REPO = Path(__file__).resolve().parents[2]
RUNS = sorted((REPO / "docs" / "benchmarks").glob("run*.json"))


def test_readme_table_is_made_from_the_committed_runs():
    module = load_script("speed_table")
    assert len(RUNS) >= 2  # a run and a repeat
    text = module.table([json.loads(path.read_text()) for path in RUNS])
    readme = (REPO / "README.md").read_text()
    assert f"{module.START}\n{text}\n{module.END}" in readme


def test_cells_are_ranges_over_runs_and_ratios_within_a_run(tmp_path):
    module = load_script("speed_table")

    def run(ours, official):
        figures = lambda step: dict(train_step_s=step)  # noqa: E731
        return {"configs": {"qd_detr_2l": {"figures": figures(ours)}, "official_2l": {"figures": figures(official)}}}

    runs = [run(1.0, 2.0), run(3.0, 4.0)]
    value = module.ratio(("qd_detr_2l", "train_step_s"), ("official_2l", "train_step_s"))
    assert module.cell(runs, value, 2) == "0.50–0.75"  # 1/2 and 3/4, never 1/4 or 3/2
    assert module.cell(runs[:1], value, 2) == "0.50"
    assert module.cell(runs, lambda r: module.figure(r, "td_detr", "train_step_s"), 2) == "—"
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{module.START}\nold\n{module.END}\noutro\n")
    module.rewrite(readme, "new")
    assert readme.read_text() == f"intro\n{module.START}\nnew\n{module.END}\noutro\n"
