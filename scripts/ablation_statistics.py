"""The claims of the ablation (``scripts/ablate.py --summarize-only``): paired differences with hierarchical bootstrap
confidence intervals, at equal optimizer steps and at equal samples seen, with each setting's wall-clock cost.

A claim compares a setting S with a reference R on the runs of the seeds both have (paired by seed: same data order,
same initialisation seed). Per seed, a split's mAP is the mean of the per-query AP the run recorded (100 × mean =
the reported mAP). The headline differences S − R:

* ``shifted``: shifted-split mAP (the cue moved off the moment), higher is better;
* ``gap``: the iid − shifted mAP gap, lower is better;
* ``spurious``: Spurious mAP (moments erased; lower is better);
* ``iid``: in-distribution mAP;
* ``kept``: (shifted_S − shifted_R) / (iid_L − shifted_L), the share of the shifted mAP that the family baseline L
  (the run without synthesis and dynamics of S's architecture and width: ``baseline``, ``qd_detr``,
  ``baseline_256``; at equal samples, its equal-samples run) loses which S keeps over R (with R = L: the fraction of the baseline's lost shifted mAP that S
  keeps). A ratio of means over seeds.

Confidence intervals: 95 % percentile intervals of a hierarchical bootstrap (:data:`RESAMPLES` resamples, fixed
:data:`RNG_SEED`): each resample draws the seeds with replacement, then within each drawn seed the queries of each
split with replacement; S, R and L use the same draws (paired by seed and by query). Where a run has no per-query AP
(results from before it was recorded) the split falls back to the reported mAP per seed (seeds-only bootstrap).
A claim is stated only when its interval excludes 0 (and it has >= 2 seeds; for ``kept`` also when the baseline
loses shifted mAP in every resample); otherwise the cell reads "not shown". With few seeds a percentile interval
covers less than 95 %: the study uses >= 5.

Fairness: "equal steps" compares the runs of the plan's step budget. "Equal samples" replaces R by the run with R's
flags, architecture and width trained on as many rows as S (``samples_per_round`` in the run records: the ratio of
rows per optimizer step from the two training configs, e.g. ``baseline_equal_samples``); when S and R see as many
rows per step, the two axes are the same comparison.
"""

from __future__ import annotations

import dataclasses

import numpy as np

RESAMPLES = 10_000
RNG_SEED = 0
CHUNK = 500  # resamples gathered at once (bounds memory: CHUNK x seeds x queries per split)
LEVEL = 0.95
SPLITS = ("iid", "shifted", "spurious")
MAP_KEYS = {"iid": "MR-full-mAP", "shifted": "MR-full-mAP", "spurious": "Spurious-mAP"}
# key -> (column title, lower is better)
EFFECTS = {
    "shifted": ("Δ shifted mAP", False),
    "gap": ("Δ (iid − shifted mAP) ↓", True),
    "spurious": ("Δ Spurious mAP ↓", True),
    "iid": ("Δ iid mAP", False),
    "kept": ("Δ share of the baseline's lost shifted mAP", False),
}
NOT_SHOWN = "not shown"
NO_STRATEGY = ["--no-synthesis", "--no-dynamics"]


@dataclasses.dataclass(frozen=True)
class Claim:
    """S (`setting`) against R (`reference`); `group` names the table it belongs to."""

    group: str
    label: str
    setting: str
    reference: str


# ------------------------------------------------------------------------------------------------------------------
# Data per setting
# ------------------------------------------------------------------------------------------------------------------


def runs_by_key(results: list[dict]) -> dict[str, dict[int, dict]]:
    """key -> seed -> run."""
    table: dict[str, dict[int, dict]] = {}
    for run in results:
        table.setdefault(run["key"], {})[int(run["seed"])] = run
    return table


def split_values(runs: dict[str, list[dict]], split: str) -> tuple[dict[str, np.ndarray], str]:
    """name -> [seeds, queries] AP values (0..1) of `split` for each name's `runs` (one per seed, in the same seed
    order), and the method: ``"seeds × queries"`` (columns are the same qids for every name), or ``"seeds"`` (the
    reported mAP / 100 as one value per seed) when a run lacks per-query values or the runs scored other queries."""
    per_query = [run.get("per_query_ap", {}).get(split) for name_runs in runs.values() for run in name_runs]
    if all(per_query) and all(set(values) == set(per_query[0]) for values in per_query):
        qids = sorted(per_query[0], key=int)
        return ({name: np.array([[run["per_query_ap"][split][q] for q in qids] for run in name_runs])
                 for name, name_runs in runs.items()}, "seeds × queries")
    return ({name: np.array([[run["metrics"][split][MAP_KEYS[split]] / 100.0] for run in name_runs])
             for name, name_runs in runs.items()}, "seeds")


def _first(runs: dict[int, dict]) -> dict:
    return next(iter(runs.values()))


def _same_model(a: dict, b: dict) -> bool:
    return a["architecture"] == b["architecture"] and a.get("size") == b.get("size")


def family_baseline(table: dict, setting: str) -> str | None:
    """The run without synthesis and dynamics of `setting`'s architecture and width, at the plan's steps."""
    mine = _first(table[setting])
    for key, runs in table.items():
        run = _first(runs)
        if list(run["flags"]) == NO_STRATEGY and _same_model(run, mine) and (run.get("samples_per_round") or 1.0) == 1.0:
            return key
    return None


def rows_factor(runs: dict[int, dict]) -> float | None:
    """Rows per optimizer step over the batch size (1, 1.5, 2), or None for records without it."""
    run = _first(runs)
    return run["rows_per_batch"] / run["batch_size"] if run.get("rows_per_batch") else None


def samples_reference(table: dict, setting: str, reference: str) -> tuple[str, str] | None:
    """(axis, key) of the reference at equal samples seen for `setting`: `reference` itself when both see as many
    rows per step, else the setting with the reference's flags trained on `setting`'s rows; None if not run."""
    mine, theirs = rows_factor(table[setting]), rows_factor(table[reference])
    if mine is None or theirs is None:
        return None
    if abs(mine - theirs) < 1e-9:
        return "equal steps = equal samples", reference
    base = _first(table[reference])
    for key, runs in table.items():
        run = _first(runs)
        if (key != reference and run["flags"] == base["flags"] and _same_model(run, base)
                and abs((run.get("samples_per_round") or 1.0) * theirs - mine) < 1e-9):
            return "equal samples", key
    return None


# ------------------------------------------------------------------------------------------------------------------
# Bootstrap
# ------------------------------------------------------------------------------------------------------------------


def bootstrap_means(values: dict[str, dict[str, np.ndarray]], resamples: int = RESAMPLES,
                    rng_seed: int = RNG_SEED) -> dict[str, dict[str, np.ndarray]]:
    """name -> split -> [resamples] means (×100) of hierarchical resamples of `values` (name -> split ->
    [seeds, queries], the same seeds in the same order for every name). Every name uses the same draws."""
    rng = np.random.default_rng(rng_seed)
    names = list(values)
    splits = list(values[names[0]])
    seeds = values[names[0]][splits[0]].shape[0]
    out = {name: {split: np.empty(resamples) for split in splits} for name in names}
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        seed_draw = rng.integers(0, seeds, (size, seeds))[..., None]
        for split in splits:
            queries = values[names[0]][split].shape[1]
            query_draw = rng.integers(0, queries, (size, seeds, queries))
            for name in names:
                out[name][split][start:start + size] = 100 * values[name][split][seed_draw, query_draw].mean(axis=(1, 2))
    return out


def effects(means: dict[str, dict[str, np.ndarray]], setting: str, reference: str, loss: str) -> dict[str, np.ndarray]:
    """The headline differences S − R from per-name split means (arrays or scalars alike)."""
    s, r, lo = means[setting], means[reference], means[loss]
    lost = lo["iid"] - lo["shifted"]
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = np.where(lost > 0, (s["shifted"] - r["shifted"]) / np.where(lost > 0, lost, 1.0), np.nan)
    return {
        "shifted": s["shifted"] - r["shifted"],
        "gap": (s["iid"] - s["shifted"]) - (r["iid"] - r["shifted"]),
        "spurious": s["spurious"] - r["spurious"],
        "iid": s["iid"] - r["iid"],
        "kept": kept,
    }


def interval(estimate: float, distribution: np.ndarray, seeds: int) -> dict:
    """Estimate, percentile CI and whether it is a claim (CI excludes 0, >= 2 seeds, defined in every resample)."""
    defined = bool(np.isfinite(distribution).all()) and bool(np.isfinite(estimate))
    tail = 100 * (1 - LEVEL) / 2
    low, high = (np.percentile(distribution, [tail, 100 - tail]) if defined else (np.nan, np.nan))
    shown = defined and seeds >= 2 and (low > 0 or high < 0)
    result = {"estimate": _round(estimate), "ci": [_round(low), _round(high)], "shown": bool(shown)}
    if not shown:
        result["why_not"] = ("fewer than 2 seeds" if seeds < 2 else "the baseline loses no shifted mAP in some resample"
                             if not defined else "the interval includes 0")
    return result


def _round(value) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def compare(table: dict, setting: str, reference: str, loss: str, resamples: int = RESAMPLES) -> dict | None:
    """One comparison on the seeds S, R and L share: estimates and intervals of every effect; None without a
    shared seed."""
    names = list(dict.fromkeys((setting, reference, loss)))
    seeds = sorted(set.intersection(*(set(table[name]) for name in names)))
    if not seeds:
        return None
    values, methods = {name: {} for name in names}, {}
    for split in SPLITS:
        arrays, methods[split] = split_values({name: [table[name][seed] for seed in seeds] for name in names}, split)
        for name, array in arrays.items():
            values[name][split] = array
    point = {name: {split: 100 * array.mean() for split, array in splits.items()} for name, splits in values.items()}
    estimates = effects(point, setting, reference, loss)
    distributions = effects(bootstrap_means(values, resamples), setting, reference, loss)
    return {
        "seeds": seeds,
        "queries": {split: int(values[setting][split].shape[1]) for split in SPLITS},
        "method": methods,
        "effects": {key: interval(float(estimates[key]), distributions[key], len(seeds)) for key in EFFECTS},
    }


# ------------------------------------------------------------------------------------------------------------------
# Claims and costs
# ------------------------------------------------------------------------------------------------------------------


def mean_seconds(runs: dict[int, dict], part: str = "train") -> float:
    return float(np.mean([run["seconds"].get(part, run["seconds"]["total"]) for run in runs.values()]))


def costs(table: dict) -> dict:
    """Per setting: mean optimizer steps and samples seen, wall-clock seconds per run (training, and all three
    commands) and the training seconds over its family baseline's."""
    out = {}
    for key, runs in table.items():
        def mean(field):
            values = [run.get(field) for run in runs.values()]
            return round(float(np.mean(values)), 1) if all(v is not None for v in values) else None

        baseline = family_baseline(table, key)
        ratio = (round(mean_seconds(runs) / mean_seconds(table[baseline]), 2)
                 if baseline and mean_seconds(table[baseline]) > 0 else None)
        out[key] = {"runs": len(runs), "train_steps": mean("train_steps"), "samples_seen": mean("samples_seen"),
                    "train_seconds": round(mean_seconds(runs), 1), "total_seconds": round(mean_seconds(runs, "total"), 1),
                    "train_seconds_vs_baseline": ratio, "baseline": baseline}
    return out


def claims(results: list[dict], claim_list: list[Claim], resamples: int = RESAMPLES) -> list[dict]:
    """Every claim whose settings ran, at each fairness axis whose runs exist."""
    table = runs_by_key(results)
    out = []
    for claim in claim_list:
        if claim.setting not in table or claim.reference not in table:
            continue
        family = family_baseline(table, claim.setting) or claim.reference
        axes = [("equal steps", claim.reference, family)]
        by_samples = samples_reference(table, claim.setting, claim.reference)
        loss_by_samples = samples_reference(table, claim.setting, family)
        if by_samples and by_samples[0] == "equal steps = equal samples":
            axes = [(by_samples[0], claim.reference, axes[0][2])]
        elif by_samples and loss_by_samples:
            axes.append(("equal samples", by_samples[1], loss_by_samples[1]))
        for axis, reference, loss in axes:
            comparison = compare(table, claim.setting, reference, loss, resamples)
            if comparison is None:
                continue
            seconds = mean_seconds(table[claim.setting]), mean_seconds(table[reference])
            out.append({
                **dataclasses.asdict(claim), "axis": axis, "reference_run": reference, "loss_reference": loss,
                **comparison,
                "train_seconds": [round(s, 1) for s in seconds],
                "train_seconds_ratio": round(seconds[0] / seconds[1], 2) if seconds[1] > 0 else None,
            })
    return out


# ------------------------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------------------------


def cell(effect: dict, percent: bool = False) -> str:
    """"+5.12 [+2.30, +7.90]" for a claim, "not shown" otherwise."""
    if not effect["shown"]:
        return NOT_SHOWN
    scale, unit = (100, " %") if percent else (1, "")
    low, high = effect["ci"]
    return f"{scale * effect['estimate']:+.2f}{unit} [{scale * low:+.2f}, {scale * high:+.2f}]"


def _raw(effect: dict, percent: bool = False) -> str:
    scale = 100 if percent else 1
    if effect["estimate"] is None:
        return "n/a"
    if effect["ci"][0] is None:  # the baseline lost no shifted mAP in some resample: no interval for a share of it
        return f"{scale * effect['estimate']:+.2f} [undefined]"
    low, high = effect["ci"]
    return f"{scale * effect['estimate']:+.2f} [{scale * low:+.2f}, {scale * high:+.2f}]"


def markdown(claim_rows: list[dict], cost_table: dict, labels: dict[str, str], resamples: int = RESAMPLES) -> str:
    """The claims table (only intervals that exclude 0 are stated), the same numbers unfiltered, and the costs."""
    head = ("| claim | fairness | seeds | " + " | ".join(title for title, _ in EFFECTS.values())
            + " | training time × reference |")
    rule = "|" + "---|" * (len(EFFECTS) + 4)
    intro = (f"Mean paired difference (setting − reference, paired by seed) with a {LEVEL:.0%} hierarchical bootstrap "
             f"interval ({resamples} resamples of seeds, then of queries within each seed; RNG seed {RNG_SEED}). "
             f"A cell states a claim only where the interval excludes 0; otherwise it reads \"{NOT_SHOWN}\". "
             "\"Δ share\" is in % of the shifted mAP the family baseline loses (iid − shifted).")
    out = ["**Claims**", "", intro, "", head, rule]
    raw = ["**Every estimate and interval, claimed or not**", "", head, rule]
    for row in claim_rows:
        first = f"| {row['label']} | {row['axis']} ({row['reference_run']}) | {len(row['seeds'])} | "
        time = f"{row['train_seconds_ratio']:.2f}×" if row["train_seconds_ratio"] is not None else "n/a"
        out.append(first + " | ".join(cell(row["effects"][k], k == "kept") for k in EFFECTS) + f" | {time} |")
        raw.append(first + " | ".join(_raw(row["effects"][k], k == "kept") for k in EFFECTS) + f" | {time} |")
    cost = ["**Cost of each setting** (means per run; training wall-clock seconds, and over the family baseline's)", "",
            "| setting | runs | optimizer steps | samples seen | training s | all commands s | training × baseline |",
            "|" + "---|" * 7]
    for key, c in cost_table.items():
        values = [c["runs"], c["train_steps"], c["samples_seen"], c["train_seconds"], c["total_seconds"]]
        ratio = f"{c['train_seconds_vs_baseline']:.2f}×" if c["train_seconds_vs_baseline"] is not None else "n/a"
        cost.append(f"| {labels.get(key, key)} | " + " | ".join("n/a" if v is None else f"{v:g}" for v in values)
                    + f" | {ratio} |")
    return "\n".join(out + [""] + raw + [""] + cost) + "\n"
