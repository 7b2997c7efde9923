"""scripts/ablate.py (runner), ablation_plan.py (settings, runs) and ablation_tables.py (summary): the dry run writes
one result per (setting, seed) with every metric, summarises them, and a rerun skips finished runs while an
interrupted run restarts from a clean folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_utils import load_script


@pytest.fixture(scope="module")
def ablate():
    return load_script("ablate")


@pytest.fixture(scope="module")
def ablation_plan():
    return load_script("ablation_plan")


@pytest.fixture(scope="module")
def ablation_tables():
    return load_script("ablation_tables")


def test_every_table_row_is_a_setting_and_sweeps_reuse_the_full_run(ablation_plan):
    from td_detr import TDDetrConfig

    groups = ablation_plan.GROUPS
    assert all(key in ablation_plan.SETTINGS for rows in groups.values() for _, key, _ in rows)
    # The sweep value equal to the full model's default is the full run itself, not a second identical training.
    defaults = TDDetrConfig()
    for sweep, default in (("alpha", defaults.synthesis_alpha), ("beta", defaults.dynamics_beta)):
        by_value = {x: key for _, key, x in groups[sweep]}
        assert by_value[default] == "full"
        assert all(ablation_plan.SETTINGS[key].flags == (f"--{sweep}", str(x))
                   for x, key in by_value.items() if key != "full")


def test_models_are_the_package_presets(ablation_plan):
    from td_detr import TDDetrConfig

    qd_detr = TDDetrConfig.qd_detr_baseline().to_dict()
    assert all(qd_detr[key] == value for key, value in ablation_plan.QD_DETR_WEIGHTS.items())


def test_every_run_has_its_own_files(ablate, ablation_plan, tmp_path):
    # Dotted setting names ("alpha_0.5") once shared one spec / log file, so parallel runs overwrote each other's.
    plan = ablation_plan.PLANS["study"]
    specs = [ablation_plan.run_spec(setting, seed, plan, tmp_path)
             for setting in ablation_plan.SETTINGS.values() for seed in (0, 1)]
    paths = [path for spec in specs
             for path in (*ablate.side_files(spec), Path(spec["result_file"]), Path(spec["work_dir"]))]
    assert len(set(paths)) == len(paths) == 4 * len(specs)


def test_mean_std_is_the_sample_statistic(ablation_tables):
    assert ablation_tables.mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "values": [1.0, 2.0, 3.0]}
    assert ablation_tables.mean_std([5.0])["std"] == 0.0


@pytest.mark.slow  # trains: each run is three td-detr processes
def test_dry_run_results_and_resume(ablate, tmp_path, capsys):
    results = tmp_path / "abl"
    assert ablate.main(["--dry-run", "--results-dir", str(results), "--only", "baseline", "--threads", "1"]) == 0
    first = results / "runs" / "baseline__seed0.json"
    stored = json.loads(first.read_text())
    assert stored["key"] == "baseline" and stored["seed"] == 0 and stored["train_steps"] == 2
    # 16 training queries in batches of 8: 2 steps = 1 epoch of 16 rows (no synthesis); the best of the one evaluation.
    assert (stored["samples_seen"], stored["rows_per_batch"], stored["convergence"]["epochs_run"]) == (16, 8, 1.0)
    assert (stored["convergence"]["best_step"], stored["convergence"]["best_epoch"]) == (2, 1.0)
    assert stored["seconds"]["train"] > 0 and stored["device"] == "cpu"
    # Per-query AP of every headline split, averaging to the reported mAP.
    for split, key, file in (("iid", "MR-full-mAP", "validation_iid"), ("shifted", "MR-full-mAP", "validation"),
                             ("spurious", "Spurious-mAP", "validation_iid")):
        qids = {str(json.loads(line)["qid"]) for line in (results / "data" / f"{file}.jsonl").read_text().splitlines()}
        values = stored["per_query_ap"][split]
        assert set(values) == qids and round(100 * sum(values.values()) / len(values), 2) == stored["metrics"][split][key]
    assert set(stored["metrics"]) == {"iid", "shifted", "spurious", "dynamic_context"}
    assert set(stored["metrics"]["spurious"]) == {"Spurious-R1@0.5", "Spurious-R1@0.7", "Spurious-mAP"}
    for split in ("iid", "shifted", "dynamic_context"):
        assert set(stored["metrics"][split]) == {"MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP"}
    assert all(0.0 <= v <= 100.0 for split in stored["metrics"].values() for v in split.values())
    assert stored["commands"][0].startswith("td-detr train ") and "--no-synthesis --no-dynamics" in stored["commands"][0]
    assert "--eval-split validation_iid" in stored["commands"][0] and "--eval-split validation " in stored["commands"][1]
    assert (results / "predictions" / "baseline__seed0__validation.jsonl").is_file()
    assert not (results / "work" / "baseline__seed0").exists()  # weights and derived splits are cleaned up

    # A run killed half-way leaves its work folder behind; the rerun skips the finished run and redoes that one.
    stale = results / "work" / "full__seed0"
    stale.mkdir(parents=True)
    (stale / "half-written.txt").write_text("x")
    mtime = first.stat().st_mtime_ns
    capsys.readouterr()
    assert ablate.main(["--dry-run", "--results-dir", str(results), "--only", "baseline,full", "--threads", "1"]) == 0
    log = capsys.readouterr().out
    assert "baseline__seed0: done before, skipped" in log and "full__seed0: done before" not in log
    assert first.stat().st_mtime_ns == mtime and not stale.exists()

    all_runs = json.loads((results / "results.json").read_text())
    assert sorted(r["key"] for r in all_runs) == ["baseline", "full"]
    summary = json.loads((results / "summary.json").read_text())
    full = summary["settings"]["full"]
    assert full["seeds"] == [0] and full["metrics"]["shifted"]["MR-full-mAP"]["std"] == 0.0
    run = next(r for r in all_runs if r["key"] == "full")
    assert full["metrics"]["iid"]["MR-full-mAP"]["mean"] == pytest.approx(run["metrics"]["iid"]["MR-full-mAP"], abs=1e-3)
    # Groups list only settings that ran; α / β = 0.7 point at the full run.
    assert [row["key"] for row in summary["groups"]["components"]] == ["baseline", "full"]
    assert [row["x"] for row in summary["groups"]["alpha"]] == [0.7]
    assert "| full TD-DETR |" in (results / "summary.md").read_text()
    # One seed: the claim is computed but never stated.
    (claim,) = summary["claims"]
    assert (claim["setting"], claim["reference"], claim["seeds"]) == ("full", "baseline", [0])
    assert claim["method"]["shifted"] == "seeds × queries" and not claim["effects"]["shifted"]["shown"]
    assert summary["costs"]["full"]["samples_seen"] == 32  # the tiny model synthesizes 2·B rows a step


def test_equal_samples_runs_train_on_the_rows_of_their_rival(ablation_plan, tmp_path):
    settings, plan = ablation_plan.SETTINGS, ablation_plan.PLANS["study"]
    keys = ("baseline", "full", "baseline_equal_samples", "qd_detr", "qd_detr_td", "qd_detr_equal_samples",
            "baseline_256", "full_256", "baseline_256_equal_samples")
    spec = {key: ablation_plan.run_spec(settings[key], 0, plan, tmp_path) for key in keys}
    # The synthetic preset keeps the originals: a synthesizing step trains on 1.5·B rows (computed from the config).
    assert [spec[k]["rows_per_batch"] for k in keys] == [32, 48, 32, 32, 48, 32, 32, 48, 32]
    assert [spec[k]["samples_per_round"] for k in keys] == [1.0, 1.0, 1.5, 1.0, 1.0, 1.5, 1.0, 1.0, 1.5]
    assert spec["qd_detr_equal_samples"]["architecture"] == "qd_detr"
    # An evaluation round of the equal-samples baseline is 1.5 epochs of ceil(N / B) steps.
    steps_per_round = round(1.5 * -(-plan.data_size // plan.batch_size))
    assert f"--save-steps {steps_per_round} --max-steps {round(plan.epochs * steps_per_round)}" in " ".join(
        spec["baseline_equal_samples"]["commands"][0])
    # The dry run's tiny model replaces every row (2·B): twice the steps.
    dry = ablation_plan.run_spec(settings["baseline_equal_samples"], 0, ablation_plan.PLANS["dry_run"], tmp_path)
    assert dry["samples_per_round"] == 2.0 and "--max-steps 4" in " ".join(dry["commands"][0])


def test_samples_seen_follows_the_epochs_short_last_batch(ablate):
    one_and_a_half = lambda rows: rows + rows // 2  # noqa: E731
    # 20 rows in batches of 8: 8, 8, 4 per epoch -> 12, 12, 6 rows; 5 steps = one epoch (30) + two batches (24).
    assert ablate.samples_seen(5, 20, 8, one_and_a_half) == 54
    assert ablate.samples_seen(0, 20, 8, one_and_a_half) == 0
    assert ablate.samples_seen(4, 16, 8, lambda rows: rows) == 32


def test_changed_settings_are_not_reused(ablate, ablation_plan, ablation_tables, tmp_path):
    plan = ablation_plan.PLANS["dry_run"]
    spec = ablation_plan.run_spec(ablation_plan.SETTINGS["full"], 0, plan, tmp_path)
    ablation_tables.write_json_atomic(Path(spec["result_file"]), {"fingerprint": spec["fingerprint"]})
    assert ablate.load_finished(spec) is not None
    other = ablation_plan.run_spec(ablation_plan.SETTINGS["full"], 0, ablation_plan.PLANS["quick"], tmp_path)
    assert other["result_file"] == spec["result_file"] and ablate.load_finished(other) is None


def _fake_result(ablation_tables, key, seed, iid_map, shifted_map):
    main = {k: 50.0 for k in ablation_tables.MAIN_KEYS}
    return {"key": key, "seed": seed, "flags": [], "architecture": "td_detr", "train_steps": 10,
            "seconds": {"total": 1.0},
            "metrics": {"iid": {**main, "MR-full-mAP": iid_map}, "shifted": {**main, "MR-full-mAP": shifted_map},
                        "spurious": {k: 5.0 for k in ablation_tables.SPURIOUS_KEYS}, "dynamic_context": dict(main)}}


def test_summarize_only_keeps_meta_and_adds_the_shortcut_gap(ablate, ablation_tables, tmp_path, capsys):
    # The run records of two invocations (the second added seed 1 with a longer cap); results.json held the first's.
    results = [_fake_result(ablation_tables, "baseline", 0, 30.0, 20.0),
               _fake_result(ablation_tables, "baseline", 1, 40.0, 36.0),
               _fake_result(ablation_tables, "full", 0, 35.0, 35.5)]
    results[1].update(epochs=60, convergence={"best_epoch": 41.0, "epochs_run": 52.0, "steps_run": 520})
    # An equal-samples run: its 40-round cap is 60 epochs (1.5 epochs a round), the unit of "epochs run".
    results.append({**_fake_result(ablate, "baseline_equal_samples", 0, 30.0, 20.0), "epochs": 40,
                    "samples_per_round": 1.5, "convergence": {"best_epoch": 58.5, "epochs_run": 60.0, "steps_run": 600}})
    (tmp_path / "runs").mkdir()
    for result in results:
        (tmp_path / "runs" / f"{result['key']}__seed{result['seed']}.json").write_text(json.dumps(result))
    (tmp_path / "results.json").write_text(json.dumps([results[0], results[2]]))
    meta = {"where": "another machine", "threads": 1, "runs": 2}
    (tmp_path / "summary.json").write_text(json.dumps({"meta": meta}))
    assert ablate.main(["--summarize-only", "--results-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["meta"] == {**meta, "runs": 4}
    assert len(json.loads((tmp_path / "results.json").read_text())) == 4
    assert summary["settings"]["baseline"]["convergence"]["cap"] == [None, 60]
    assert summary["settings"]["baseline_equal_samples"]["convergence"]["cap"] == [60.0]
    printed = capsys.readouterr().out  # the console table lists the groups that have rows, and only those
    assert "-- main" in printed and "-- width_256" not in printed and "-- transfer" not in printed
    gap = summary["settings"]["baseline"]["shortcut_gap"]["MR-full-mAP"]
    assert gap["values"] == [10.0, 4.0] and gap["mean"] == 7.0
    assert summary["settings"]["full"]["shortcut_gap"]["MR-full-mAP"]["values"] == [-0.5]
    table = (tmp_path / "summary.md").read_text()
    assert "iid − shifted mAP" in table and "| 7.00 ± 4.24 |" in table
    assert "| baseline (no synthesis, no dynamics) | 0, 1 | -, 41 | -, 52 | -, 60 | -, 520 | 1 |" in table


def test_summarize_only_needs_run_records(ablate, tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"meta": {}}))
    with pytest.raises(SystemExit, match="no run records"):
        ablate.main(["--summarize-only", "--results-dir", str(tmp_path)])


@pytest.mark.slow
def test_parallel_runs_keep_their_own_results(ablate, tmp_path):
    # Two subprocesses at a time; dotted names (alpha_0.3 / alpha_0.5) once collided in exactly this mode.
    results = tmp_path / "abl"
    keys = ["baseline", "alpha_0.3", "alpha_0.5"]
    assert ablate.main(["--dry-run", "--results-dir", str(results), "--only", ",".join(keys), "--jobs", "2",
                        "--threads", "1"]) == 0
    stored = {key: json.loads((results / "runs" / f"{key}__seed0.json").read_text()) for key in keys}
    assert all(stored[key]["key"] == key for key in keys)
    assert "--alpha 0.3" in stored["alpha_0.3"]["commands"][0] and "--alpha 0.5" in stored["alpha_0.5"]["commands"][0]
    summary = json.loads((results / "summary.json").read_text())
    assert summary["meta"]["parallel_runs"] == 2 and set(summary["settings"]) == set(keys)
    # Each run left its own log beside the (cleaned-up) work folders; no spec file is left behind.
    assert {p.name for p in (results / "work").glob("*.log")} == {f"{key}__seed0.log" for key in keys}
    assert not list((results / "work").glob("*.spec.json"))


@pytest.mark.parametrize("flags, plan", [(["--quick", "--dry-run"], "dry_run"), (["--dry-run"], "dry_run"),
                                         (["--quick"], "quick"), ([], "study"), (["--plan", "earlier"], "earlier")])
def test_dry_run_combines_with_quick(ablate, flags, plan):
    assert ablate.chosen_plan(ablate.parse_args(flags)).name == plan


def test_equal_samples_baseline_sees_the_synthesizing_models_rows_per_round(ablation_plan):
    # full_256 trains on B originals + B/2 synthesized rows a step; the equal-samples baseline gets 1.5x the steps per
    # evaluation round (and per cap and LR drop), so both have seen as many rows at every round.
    plan = ablation_plan.PLANS["study"]
    full = ablation_plan.schedule_flags(ablation_plan.SETTINGS["full_256"], plan)
    equal = ablation_plan.schedule_flags(ablation_plan.SETTINGS["baseline_256_equal_samples"], plan)
    steps_per_epoch = -(-plan.data_size // plan.batch_size)

    def value(flags, name):
        return float(flags[flags.index(name) + 1])

    assert "--until-converged" in full and "--until-converged" in equal
    assert value(full, "--epochs") == plan.epochs and "--save-steps" not in full
    rows_per_round = value(equal, "--save-steps") * plan.batch_size
    assert rows_per_round == 1.5 * steps_per_epoch * plan.batch_size
    assert value(equal, "--max-steps") == 1.5 * plan.epochs * steps_per_epoch
    assert value(equal, "--lr-drop") == 1.5 * value(full, "--lr-drop")
    assert value(full, "--lr") == value(equal, "--lr")  # the width's learning rate, the same for both
    spec = ablation_plan.run_spec(ablation_plan.SETTINGS["full_256"], 0, plan, Path("/r"))
    assert spec["model"]["hidden_size"] == 256 and spec["commands"][0][spec["commands"][0].index("--config") + 1] \
        == "/r/configs/td_detr_qd_detr_width.json"
    assert ablation_plan.run_spec(ablation_plan.SETTINGS["full"], 0, plan, Path("/r"))["model"]["hidden_size"] == 64


def test_device_enters_the_fingerprint_and_the_commands_only_off_the_cpu(ablate, ablation_plan, ablation_tables,
                                                                          tmp_path):
    setting, plan = ablation_plan.SETTINGS["full_256"], ablation_plan.PLANS["study"]
    cpu = ablation_plan.run_spec(setting, 0, plan, tmp_path)
    # The CPU is the default and leaves no trace: the runs of existing folders keep their fingerprints and commands.
    assert ablation_plan.run_spec(setting, 0, plan, tmp_path, device="cpu") == cpu
    assert "device" not in cpu and not any("--device" in argv for argv in cpu["commands"])
    cuda = ablation_plan.run_spec(setting, 0, plan, tmp_path, device="cuda")
    assert cuda["device"] == "cuda" and cuda["fingerprint"] != cpu["fingerprint"]
    assert cuda["result_file"] == cpu["result_file"]
    # Every command runs on the GPU; training also keeps its features there. Nothing else changes.
    train, evaluate, spurious = cuda["commands"]
    assert train[-3:] == ["--device", "cuda", "--features-on-device"] and train[:-3] == cpu["commands"][0]
    assert evaluate == [*cpu["commands"][1], "--device", "cuda"] and spurious == [*cpu["commands"][2], "--device", "cuda"]
    # A CPU record never stands in for a GPU run (nor the other way round).
    ablation_tables.write_json_atomic(Path(cpu["result_file"]), {"fingerprint": cpu["fingerprint"]})
    assert ablate.load_finished(cpu) is not None and ablate.load_finished(cuda) is None
    # A CPU run's processes see no GPU, so `td-detr train`'s default device (auto) stays on the CPU.
    assert ablate.thread_environment(1, ablate.run_device(cpu))["CUDA_VISIBLE_DEVICES"] == ""
    assert ablate.thread_environment(1, ablate.run_device(cuda)).get("CUDA_VISIBLE_DEVICES") != ""


def test_device_cuda_without_a_gpu_exits_2_before_any_work(ablate, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    results = tmp_path / "abl"
    assert ablate.main(["--dry-run", "--device", "cuda", "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--device cuda: no CUDA GPU" in err and len(err.splitlines()) == 1
    assert not results.exists()
    assert ablate.parse_args([]).device == "cpu"


def _results_folder(ablation_tables, root: Path, records: dict, readme: str = "data A") -> Path:
    """A results folder as scripts/gpu_study.sh packs it: run records (name -> fingerprint), predictions, data README,
    logs; no summary.json (its study was stopped at the time limit)."""
    for name, fingerprint in records.items():
        key, seed = name.split("__seed")
        ablation_tables.write_json_atomic(root / "runs" / f"{name}.json", {
            **_fake_result(ablation_tables, key, int(seed), 40.0 + int(seed), 20.0), "fingerprint": fingerprint})
        (root / "predictions").mkdir(exist_ok=True)
        (root / "predictions" / f"{name}__validation.jsonl").write_text(f'{{"qid": "{name}"}}\n')
    (root / "data").mkdir()
    (root / "data" / "README.md").write_text(readme)
    (root / "work").mkdir()
    (root / "work" / "log.log").write_text("not merged")
    return root


def _tarball(folder: Path, path: Path) -> Path:
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="gpu-study")
    return path


def test_merge_runs_copies_the_records_of_a_stopped_study_and_summarizes_them(ablate, ablation_tables, tmp_path):
    merge_runs = load_script("merge_runs")
    source = _results_folder(ablation_tables, tmp_path / "gpu", {"baseline_256__seed0": "a", "full_256__seed0": "b",
                                                                  "baseline_256__seed1": "c"})
    target = tmp_path / "merged"
    assert merge_runs.main([str(_tarball(source, tmp_path / "gpu-study.tar.gz")), "--into", str(target)]) == 0
    assert sorted(p.name for p in (target / "runs").iterdir()) == sorted(p.name for p in (source / "runs").iterdir())
    assert (target / "predictions" / "full_256__seed0__validation.jsonl").read_text() == '{"qid": "full_256__seed0"}\n'
    assert (target / "data" / "README.md").read_text() == "data A" and not (target / "work").exists()
    # The stopped study wrote no summary.json: the rebuilt summary says so and holds every run.
    summary = json.loads((target / "summary.json").read_text())
    assert summary["meta"]["runs"] == 3 and "stopped before" in summary["meta"]["note"]
    assert summary["settings"]["baseline_256"]["seeds"] == [0, 1]
    assert ablate.main(["--summarize-only", "--results-dir", str(target)]) == 0
    # Merging again keeps the records (same fingerprints); a folder source works like a tarball.
    before = (target / "runs" / "full_256__seed0.json").read_text()
    assert merge_runs.main([str(source), "--into", str(target)]) == 0
    assert (target / "runs" / "full_256__seed0.json").read_text() == before


@pytest.mark.parametrize("clash", ["fingerprint", "data"])
def test_merge_runs_refuses_other_runs_and_other_data_before_copying_anything(ablation_tables, tmp_path, capsys,
                                                                               clash):
    merge_runs = load_script("merge_runs")
    target = _results_folder(ablation_tables, tmp_path / "cpu", {"full_256__seed0": "cpu-run"})
    other = {"full_256__seed0": "cuda-run" if clash == "fingerprint" else "cpu-run", "full_256__seed4": "new"}
    source = _results_folder(ablation_tables, tmp_path / "gpu", other, readme="data B" if clash == "data" else "data A")
    with pytest.raises(SystemExit) as stop:
        merge_runs.main([str(_tarball(source, tmp_path / "gpu-study.tar.gz")), "--into", str(target)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(target / ("runs/full_256__seed0.json" if clash == "fingerprint"
                                                         else "data/README.md")) in err
    assert not (target / "runs" / "full_256__seed4.json").exists()  # nothing was copied


def test_merge_runs_refuses_a_tarball_without_one_results_folder(tmp_path, capsys):
    import tarfile

    merge_runs = load_script("merge_runs")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("no runs/ here")
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "notes", arcname="notes")
    with pytest.raises(SystemExit) as stop:
        merge_runs.main([str(tmp_path / "other.tar.gz"), "--into", str(tmp_path / "into")])
    assert stop.value.code == 2 and "expected one folder with a runs/ folder, found 0" in capsys.readouterr().err
    assert not (tmp_path / "into").exists()


def test_the_long_plan_drops_the_rate_later_and_ignores_small_gains(ablation_plan):
    long, study = ablation_plan.PLANS["study_long"], ablation_plan.PLANS["study"]
    full = ablation_plan.schedule_flags(ablation_plan.SETTINGS["full"], long)
    equal = ablation_plan.schedule_flags(ablation_plan.SETTINGS["baseline_equal_samples"], long)
    for flags in (full, equal):
        assert flags[flags.index("--min-improvement") + 1] == "0.5"
        assert flags[flags.index("--min-evaluations") + 1] == "36"
    assert full[full.index("--epochs") + 1] == "120" and full[full.index("--lr-drop") + 1] == "32"
    assert equal[equal.index("--lr-drop") + 1] == "48"  # 1.5x rounds: the drop comes after as many rows
    # the study's own commands (and so its runs' fingerprints) are unchanged: no threshold flag
    assert "--min-improvement" not in ablation_plan.schedule_flags(ablation_plan.SETTINGS["full"], study)
