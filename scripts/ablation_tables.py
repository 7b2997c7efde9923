"""The summary of the ablation runs of ``scripts/ablate.py``: ``results.json``, ``summary.json``, ``summary.md``
and the console table, from the run records.

A run record reports

* ``iid``: R1@0.5 / R1@0.7 / mAP on ``validation_iid`` (cue next to the moment, as in training);
* ``shifted``: the same on ``validation`` (the cue brackets a decoy far from the moment: a model that learned the
  shortcut predicts the decoy);
* ``spurious``: Spurious R1@0.5 / R1@0.7 / mAP of ``td-detr spurious-eval`` on ``validation_iid`` (moments erased,
  targets kept; lower is better), and ``dynamic_context``: its dynamic-context split (paper S4.2).

The summary holds mean ± std per setting (sample std over seeds), the run lengths, and every claim of
:data:`ablation_plan.CLAIMS` (full vs baseline, each component vs the baseline, each α / β vs the full default, each
strategy vs QD-DETR) as the mean paired difference (by seed) of shifted mAP, the iid − shifted gap, Spurious mAP and
iid mAP and the share of the baseline's lost shifted mAP kept, each with a 95 % hierarchical bootstrap interval over
seeds and queries (``ablation_statistics.py``; a cell reads "not shown" unless the interval excludes 0), at equal
steps and, where the equal-samples runs exist, at equal samples seen, with each setting's training time beside it.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import ablation_statistics as statistics
from ablation_plan import CLAIMS, GROUPS, SETTINGS

SPLITS = ("iid", "shifted", "spurious", "dynamic_context")
MAIN_KEYS = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP")
SPURIOUS_KEYS = ("Spurious-R1@0.5", "Spurious-R1@0.7", "Spurious-mAP")
SPLIT_KEYS = {"iid": MAIN_KEYS, "shifted": MAIN_KEYS, "spurious": SPURIOUS_KEYS, "dynamic_context": MAIN_KEYS}


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": round(mean, 3), "std": round(std, 3), "values": values}


def summarize(results: list[dict], meta: dict, resamples: int = statistics.RESAMPLES) -> dict:
    """summary.json: per setting, mean ± std over seeds of every reported metric; the groups as row lists; every
    claim with its paired bootstrap interval at each fairness axis; each setting's cost."""
    by_key: dict[str, list[dict]] = {}
    for result in results:
        by_key.setdefault(result["key"], []).append(result)
    settings = {}
    for key, runs in by_key.items():
        runs.sort(key=lambda r: r["seed"])
        settings[key] = {
            "label": SETTINGS[key].label,
            "flags": runs[0]["flags"],
            "architecture": runs[0]["architecture"],
            "seeds": [r["seed"] for r in runs],
            "train_steps": runs[0]["train_steps"],
            # Per seed (same order as `seeds`): the epoch the selection metric peaked, the epochs and steps run.
            "convergence": {**{field: [r.get("convergence", {}).get(field) for r in runs]
                               for field in ("best_epoch", "epochs_run", "steps_run")},
                            # in epochs, like epochs_run: an equal-samples round is samples_per_round epochs
                            "cap": [None if r.get("epochs") is None else r["epochs"] * r.get("samples_per_round", 1.0)
                                    for r in runs]},
            "seconds_per_run": round(sum(r["seconds"]["total"] for r in runs) / len(runs), 1),
            "metrics": {split: {metric: mean_std([r["metrics"][split][metric] for r in runs])
                                for metric in SPLIT_KEYS[split]} for split in SPLITS},
            # Per seed, then mean ± std: how much mAP the model loses when the cue moves off the moment.
            "shortcut_gap": {"MR-full-mAP": mean_std([round(r["metrics"]["iid"]["MR-full-mAP"]
                                                            - r["metrics"]["shifted"]["MR-full-mAP"], 2) for r in runs])},
        }
    groups = {name: [{"label": label, "key": key, "x": x} for label, key, x in rows if key in settings]
              for name, rows in GROUPS.items()}
    return {"meta": meta, "settings": settings, "groups": groups,
            "statistics": {"resamples": resamples, "rng_seed": statistics.RNG_SEED, "level": statistics.LEVEL},
            "claims": statistics.claims(results, CLAIMS, resamples),
            "costs": statistics.costs(statistics.runs_by_key(results))}


def _cell(stat: dict) -> str:
    if len(stat["values"]) == 1:  # one seed: no spread to report
        return f"{stat['mean']:.2f}"
    return f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def markdown_tables(summary: dict) -> str:
    """One markdown table per group: iid, shifted, Spurious (lower is better) and dynamic-context R1@0.5 / R1@0.7 /
    mAP, and the iid − shifted mAP gap."""
    titles = {"components": "Components (Table 3-style)", "alpha": "Synthesizer α (Table S1)",
              "beta": "Dynamics β (Table S2)", "transfer": "Strategies on the QD-DETR baseline ('w/ TD-DETR')",
              "main": "Main comparison: baseline vs full at equal steps and at equal samples (hidden 64)",
              "width_256": "Main comparison at QD-DETR's width (hidden 256, 2/2/2 layers)"}
    header = ("| setting | iid R1@0.5 | iid R1@0.7 | iid mAP | shifted R1@0.5 | shifted R1@0.7 | shifted mAP "
              "| Spurious R1@0.5 ↓ | Spurious R1@0.7 ↓ | Spurious mAP ↓ | dyn-ctx R1@0.5 | dyn-ctx R1@0.7 | dyn-ctx mAP "
              "| iid − shifted mAP ↓ |")
    out = []
    for group, rows in summary["groups"].items():
        if not rows:
            continue
        out += [f"**{titles[group]}**", "", header, "|" + "---|" * 14]
        for row in rows:
            metrics = summary["settings"][row["key"]]["metrics"]
            cells = [_cell(metrics[split][k]) for split in SPLITS for k in SPLIT_KEYS[split]]
            cells.append(_cell(summary["settings"][row["key"]]["shortcut_gap"]["MR-full-mAP"]))
            out.append(f"| {row['label']} | " + " | ".join(cells) + " |")
        out.append("")
    labels = {key: setting.label for key, setting in SETTINGS.items()}
    resamples = summary.get("statistics", {}).get("resamples", statistics.RESAMPLES)
    return "\n".join(out + convergence_table(summary)) + "\n" + statistics.markdown(
        summary.get("claims", []), summary.get("costs", {}), labels, resamples)


def convergence_table(summary: dict) -> list[str]:
    """Per setting: best epoch, epochs run and the cap of each seed (runs until converged: the rule stopped it
    before the cap when epochs run < the cap) and the mean seconds per run."""
    rows = [(key, setting) for key, setting in summary["settings"].items()
            if any(v is not None for v in setting.get("convergence", {}).get("epochs_run", []))]
    if not rows:
        return []
    out = ["**Run length (best epoch / epochs run / cap, per seed)**", "",
           "| setting | seeds | best epoch | epochs run | cap | optimizer steps | seconds per run |",
           "|---|---|---|---|---|---|---|"]
    for key, setting in rows:
        c = setting["convergence"]
        c = {**c, "cap": c.get("cap", [None] * len(setting["seeds"]))}  # summaries written before caps were recorded
        joined = [", ".join("-" if v is None else f"{v:g}" for v in c[field])
                  for field in ("best_epoch", "epochs_run", "cap", "steps_run")]
        out.append(f"| {setting['label']} | {', '.join(map(str, setting['seeds']))} | " + " | ".join(joined)
                   + f" | {setting['seconds_per_run']:g} |")
    return out + [""]


def text_table(summary: dict) -> str:
    """The console summary: mAP on each split (mean ± std) and iid / shifted R1@0.7, one line per row."""
    lines = [f"{'setting':44s}{'iid R1@.7':>14s}{'iid mAP':>14s}{'shift R1@.7':>14s}{'shift mAP':>14s}"
             f"{'Spur. mAP↓':>14s}"]
    for group, rows in summary["groups"].items():
        if not rows:
            continue
        lines.append(f"-- {group}")
        for row in rows:
            m = summary["settings"][row["key"]]["metrics"]
            stats = (m["iid"]["MR-full-R1@0.7"], m["iid"]["MR-full-mAP"], m["shifted"]["MR-full-R1@0.7"],
                     m["shifted"]["MR-full-mAP"], m["spurious"]["Spurious-mAP"])
            lines.append(f"{row['label'][:43]:44s}" + "".join(f"{_cell(s):>14s}" for s in stats))
    lines.append(f"-- claims (95 % CI; '{statistics.NOT_SHOWN}' where it includes 0)")
    for claim in summary["claims"]:
        effects = claim["effects"]
        lines.append(f"{claim['label'][:60]:61s}{claim['axis'][:27]:28s} shifted mAP {statistics.cell(effects['shifted'])}"
                     f";  gap {statistics.cell(effects['gap'])}")
    return "\n".join(lines)




def write_summary(results_dir: Path, results: list[dict], meta: dict) -> dict:
    summary = summarize(results, meta)
    write_json_atomic(results_dir / "results.json", results)
    write_json_atomic(results_dir / "summary.json", summary)
    (results_dir / "summary.md").write_text(markdown_tables(summary))
    return summary


def resummarize(results_dir: Path) -> dict:
    """Rebuild results.json, summary.json and summary.md from every run record in runs/ (whichever invocation wrote
    it, e.g. seeds or a longer cap added later), keeping the stored meta (where and how the runs ran); without a
    summary.json (an invocation stopped before its end, e.g. scripts/gpu_study.sh's time limit) the meta says so."""
    stopped = {"note": "no summary.json: the invocation that ran these records stopped before it wrote one"}
    try:
        results = [json.loads(path.read_text()) for path in sorted((results_dir / "runs").glob("*.json"))]
        summary_file = results_dir / "summary.json"
        meta = json.loads(summary_file.read_text())["meta"] if summary_file.exists() else stopped
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"ablate.py: cannot resummarize {results_dir}: {error}") from None
    if not results:
        raise SystemExit(f"ablate.py: cannot resummarize {results_dir}: no run records in {results_dir / 'runs'}")
    results.sort(key=lambda r: (r["seed"], list(SETTINGS).index(r["key"])))
    return write_summary(results_dir, results, {**meta, "runs": len(results)})


def write_json_atomic(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")  # unique per --jobs thread
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
