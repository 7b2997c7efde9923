"""scripts/ablation_statistics.py (ablate.py --summarize-only): paired hierarchical bootstrap intervals of the claims,
the two fairness axes and the costs, on synthetic results whose true effects are known."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from script_utils import load_script


@pytest.fixture(scope="module")
def ablate():
    return load_script("ablate")


@pytest.fixture(scope="module")
def ablation_plan():
    return load_script("ablation_plan")


@pytest.fixture(scope="module")
def stats():
    return load_script("ablation_statistics")


NO_STRATEGY = ("--no-synthesis", "--no-dynamics")
FLAGS = {"baseline": NO_STRATEGY, "baseline_equal_samples": NO_STRATEGY, "dynamics_only": ("--no-synthesis",),
         "baseline_256": NO_STRATEGY}


def run_record(key, seed, ap, rows_factor=1.0, samples_per_round=1.0, architecture="td_detr", seconds=10.0,
               size="small"):
    """A result as ablate.py writes it, from per-query AP arrays {split: [queries]} (0..1)."""
    per_query = {split: {str(q): float(v) for q, v in enumerate(values)} for split, values in ap.items()}
    maps = {split: round(100 * float(np.mean(values)), 2) for split, values in ap.items()}
    main = {"MR-full-R1@0.5": 50.0, "MR-full-R1@0.7": 30.0}
    return {
        "key": key, "seed": seed, "flags": list(FLAGS.get(key, ())), "architecture": architecture, "size": size,
        "batch_size": 8, "rows_per_batch": int(8 * rows_factor), "samples_per_round": samples_per_round,
        "train_steps": round(10 * samples_per_round), "samples_seen": round(80 * rows_factor * samples_per_round),
        "seconds": {"train": seconds, "total": seconds + 5},
        "metrics": {"iid": {**main, "MR-full-mAP": maps["iid"]}, "shifted": {**main, "MR-full-mAP": maps["shifted"]},
                    "spurious": {"Spurious-R1@0.5": 5.0, "Spurious-R1@0.7": 1.0, "Spurious-mAP": maps["spurious"]},
                    "dynamic_context": {**main, "MR-full-mAP": 20.0}},
        "per_query_ap": per_query,
    }


def noisy(rng, level, queries=60):
    return np.clip(level + rng.normal(0, 0.15, queries), 0, 1)


def two_settings(shift_effect, seeds=5, seed_spread=0.0, rng_seed=0):
    """baseline and full: per seed a common level (seed_spread apart), full's shifted AP `shift_effect` higher."""
    rng = np.random.default_rng(rng_seed)
    results = []
    for seed in range(seeds):
        level = 0.3 + seed_spread * seed
        results.append(run_record("baseline", seed, {"iid": noisy(rng, 0.6), "shifted": noisy(rng, level),
                                                     "spurious": noisy(rng, 0.3)}))
        results.append(run_record("full", seed, {"iid": noisy(rng, 0.6), "shifted": noisy(rng, level + shift_effect),
                                                 "spurious": noisy(rng, 0.3)}, rows_factor=1.5, seconds=15.0))
    return results


def full_vs_baseline(stats, results, resamples=2000):
    claim = stats.Claim("components", "full vs baseline", "full", "baseline")
    (row,) = stats.claims(results, [claim], resamples)
    return row


def test_a_large_effect_is_claimed_with_its_sign(stats):
    row = full_vs_baseline(stats, two_settings(shift_effect=0.2))
    shifted, gap = row["effects"]["shifted"], row["effects"]["gap"]
    assert shifted["shown"] and 15 < shifted["estimate"] < 25 and shifted["ci"][0] > 0
    assert gap["shown"] and gap["ci"][1] < 0  # the gap shrinks by the same amount
    assert stats.cell(shifted).startswith("+") and stats.cell(gap).startswith("-")
    assert row["seeds"] == [0, 1, 2, 3, 4] and row["queries"]["shifted"] == 60
    assert row["method"] == {"iid": "seeds × queries", "shifted": "seeds × queries", "spurious": "seeds × queries"}


def test_no_effect_reads_not_shown(stats):
    row = full_vs_baseline(stats, two_settings(shift_effect=0.0))
    for key in ("shifted", "gap", "spurious", "iid"):
        effect = row["effects"][key]
        assert not effect["shown"] and effect["ci"][0] < 0 < effect["ci"][1], key
        assert stats.cell(effect) == "not shown" and effect["why_not"] == "the interval includes 0"


def test_a_constant_difference_has_a_collapsed_interval(stats):
    rng = np.random.default_rng(3)
    results = []
    for seed in range(4):
        iid, shifted, spurious = noisy(rng, 0.8), noisy(rng, 0.4), noisy(rng, 0.3)
        results.append(run_record("baseline", seed, {"iid": iid, "shifted": shifted, "spurious": spurious}))
        # Every query of every seed: shifted +0.1, Spurious -0.05, iid unchanged.
        results.append(run_record("full", seed, {"iid": iid, "shifted": shifted + 0.1, "spurious": spurious - 0.05}))
    effects = full_vs_baseline(stats, results)["effects"]
    for key, value in (("shifted", 10.0), ("spurious", -5.0), ("gap", -10.0)):
        assert effects[key]["estimate"] == pytest.approx(value, abs=1e-9)
        assert effects[key]["ci"] == pytest.approx([value, value], abs=1e-9)
    assert effects["iid"]["ci"] == [0.0, 0.0] and not effects["iid"]["shown"]


def test_kept_share_of_the_lost_shifted_map(stats):
    flat = lambda v: np.full(40, v)  # noqa: E731
    results = []
    for seed in range(3):
        results.append(run_record("baseline", seed, {"iid": flat(0.8), "shifted": flat(0.4), "spurious": flat(0.3)}))
        results.append(run_record("full", seed, {"iid": flat(0.8), "shifted": flat(0.6), "spurious": flat(0.3)}))
    kept = full_vs_baseline(stats, results)["effects"]["kept"]
    assert kept["estimate"] == pytest.approx(0.5) and kept["ci"] == pytest.approx([0.5, 0.5])
    assert stats.cell(kept, percent=True) == "+50.00 % [+50.00, +50.00]"


def test_pairing_is_by_seed(stats):
    # Seeds differ a lot (0.3 .. 0.9 shifted AP), full is 0.05 above baseline within each seed: visible only paired.
    results = two_settings(shift_effect=0.05, seeds=6, seed_spread=0.12)
    paired = full_vs_baseline(stats, results)["effects"]["shifted"]
    assert paired["shown"] and paired["ci"][0] > 0

    shuffled = list(results)
    random.Random(1).shuffle(shuffled)  # record order is irrelevant
    assert full_vs_baseline(stats, shuffled)["effects"]["shifted"] == paired

    relabelled = json.loads(json.dumps(results))  # full's seeds permuted: the pairs are broken
    permutation = [3, 4, 5, 0, 1, 2]
    for run in relabelled:
        if run["key"] == "full":
            run["seed"] = permutation[run["seed"]]
    broken = full_vs_baseline(stats, relabelled)["effects"]["shifted"]
    assert broken != paired and not broken["shown"]
    assert broken["ci"][1] - broken["ci"][0] > 3 * (paired["ci"][1] - paired["ci"][0])


def test_one_seed_is_never_a_claim(stats):
    row = full_vs_baseline(stats, two_settings(shift_effect=0.5, seeds=1))
    assert not row["effects"]["shifted"]["shown"] and row["effects"]["shifted"]["why_not"] == "fewer than 2 seeds"


def test_runs_without_per_query_values_fall_back_to_seeds(stats):
    results = two_settings(shift_effect=0.2)
    for run in results:
        if run["key"] == "baseline":
            del run["per_query_ap"]
    row = full_vs_baseline(stats, results)
    assert row["method"]["shifted"] == "seeds" and row["queries"]["shifted"] == 1
    reported = {k: np.mean([r["metrics"]["shifted"]["MR-full-mAP"] for r in results if r["key"] == k])
                for k in ("full", "baseline")}
    assert row["effects"]["shifted"]["estimate"] == pytest.approx(reported["full"] - reported["baseline"], abs=1e-9)


def test_runs_scored_on_other_queries_are_not_paired_by_query(stats):
    results = two_settings(shift_effect=0.2)
    for run in results:
        if run["key"] == "baseline":  # as many queries, other qids: pairing column by column would be wrong
            run["per_query_ap"] = {split: {str(int(q) + 1000): v for q, v in values.items()}
                                   for split, values in run["per_query_ap"].items()}
    assert full_vs_baseline(stats, results)["method"]["shifted"] == "seeds"


def test_both_fairness_axes(stats):
    results = two_settings(shift_effect=0.2)
    rng = np.random.default_rng(9)
    for seed in range(5):
        results.append(run_record("baseline_equal_samples", seed, {"iid": noisy(rng, 0.6), "shifted": noisy(rng, 0.3),
                                                                   "spurious": noisy(rng, 0.3)},
                                  samples_per_round=1.5, seconds=15.0))
        results.append(run_record("dynamics_only", seed, {"iid": noisy(rng, 0.6), "shifted": noisy(rng, 0.3),
                                                          "spurious": noisy(rng, 0.3)}, seconds=12.0))
    claims = [stats.Claim("components", "full vs baseline", "full", "baseline"),
              stats.Claim("components", "dynamics vs baseline", "dynamics_only", "baseline")]
    rows = stats.claims(results, claims, 500)
    assert [(r["setting"], r["axis"], r["reference_run"], r["loss_reference"]) for r in rows] == [
        ("full", "equal steps", "baseline", "baseline"),
        ("full", "equal samples", "baseline_equal_samples", "baseline_equal_samples"),
        ("dynamics_only", "equal steps = equal samples", "baseline", "baseline"),
    ]
    assert [r["train_seconds_ratio"] for r in rows] == [1.5, 1.0, 1.2]
    # Without the equal-samples run, only the equal-steps comparison.
    alone = stats.claims([r for r in results if r["key"] != "baseline_equal_samples"], claims[:1], 500)
    assert [r["axis"] for r in alone] == ["equal steps"]
    costs = stats.costs(stats.runs_by_key(results))
    assert costs["full"]["train_seconds_vs_baseline"] == 1.5 and costs["full"]["samples_seen"] == 120
    assert costs["baseline_equal_samples"]["train_steps"] == 15


def test_summarize_only_writes_the_claims(ablate, tmp_path, capsys):
    results = two_settings(shift_effect=0.2)
    (tmp_path / "runs").mkdir()  # --summarize-only reads the run records
    for result in results:
        (tmp_path / "runs" / f"{result['key']}__seed{result['seed']}.json").write_text(json.dumps(result))
    (tmp_path / "summary.json").write_text(json.dumps({"meta": {}}))
    assert ablate.main(["--summarize-only", "--results-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["statistics"] == {"resamples": 10_000, "rng_seed": 0, "level": 0.95}
    (claim,) = [c for c in summary["claims"] if c["setting"] == "full"]
    assert claim["label"] == "full TD-DETR vs baseline" and claim["effects"]["shifted"]["shown"]
    table = (tmp_path / "summary.md").read_text()
    line = next(row for row in table.splitlines() if row.startswith("| full TD-DETR vs baseline | equal steps"))
    assert stats_cell_in(line, claim["effects"]["shifted"]) and "| not shown |" in line  # Spurious: no effect
    assert "full TD-DETR vs baseline" in capsys.readouterr().out


def stats_cell_in(line, effect):
    low, high = effect["ci"]
    return f"| {effect['estimate']:+.2f} [{low:+.2f}, {high:+.2f}] |" in line


def test_every_claim_names_settings_that_exist(ablation_plan):
    settings, claims = ablation_plan.SETTINGS, ablation_plan.CLAIMS
    assert all(c.setting in settings and c.reference in settings for c in claims)
    assert {c.setting for c in claims} >= {"full", "synthesis_similarity", "qd_detr_td", "alpha_0.3", "beta_0.9"}


def test_the_lost_share_divides_by_the_baseline_of_the_same_width(stats):
    flat = lambda v: np.full(20, v)  # noqa: E731
    results = []
    for seed in range(3):
        results.append(run_record("baseline", seed, {"iid": flat(0.8), "shifted": flat(0.6), "spurious": flat(0.3)}))
        for key, shifted in (("baseline_256", 0.4), ("full_256", 0.5)):
            results.append(run_record(key, seed, {"iid": flat(0.8), "shifted": flat(shifted), "spurious": flat(0.3)},
                                      size="qd_detr_width"))
    (row,) = stats.claims(results, [stats.Claim("main", "full vs baseline, 256", "full_256", "baseline_256")], 200)
    assert row["loss_reference"] == "baseline_256" and row["effects"]["kept"]["estimate"] == pytest.approx(0.25)
    assert stats.costs(stats.runs_by_key(results))["full_256"]["baseline"] == "baseline_256"


def test_no_share_of_a_loss_the_baseline_does_not_have(stats):
    flat = lambda v: np.full(20, v)  # noqa: E731
    results = []
    for seed in range(3):  # the baseline does as well on the shifted split as in distribution
        results.append(run_record("baseline", seed, {"iid": flat(0.5), "shifted": flat(0.5), "spurious": flat(0.3)}))
        results.append(run_record("full", seed, {"iid": flat(0.8), "shifted": flat(0.6), "spurious": flat(0.3)}))
    kept = full_vs_baseline(stats, results, 200)["effects"]["kept"]
    assert kept["estimate"] is None and not kept["shown"]
    assert kept["why_not"] == "the baseline loses no shifted mAP in some resample" and stats._raw(kept) == "n/a"
