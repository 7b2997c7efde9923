"""`scripts/benchmark.py --device cpu --quick --run-cost`: the GPU harness's whole code path at tiny sizes on the CPU,
with a stand-in for the official-code driver (so no ../shared is needed): every figure present and consistent, the
ours / official ratios equal to the raw numbers, the run cost extrapolated to the QVHighlights schedule."""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import pytest
from script_utils import load_script

# Trains and evaluates through the Trainer, several model variants. torch.compile is left out: on a 2-core CPU its
# first step alone took 111 s (`benchmark.py --device cpu --quick`, 2026-11-29, load ~8); the GPU run measures it.
pytestmark = pytest.mark.slow

# Stand-in for scripts/official_qd_detr_gpu.py: same command line, same RESULT line, known figures per layer count.
FAKE_DRIVER = """
import argparse, json
p = argparse.ArgumentParser()
for name in ("--src", "--device", "--layers", "--bsz", "--infer-bsz", "--warmup", "--train-steps", "--latency-iters",
             "--throughput-iters", "--mode", "--steps", "--val-queries", "--train-queries", "--feature-pool", "--clips",
             "--workers"):
    p.add_argument(name)
p.add_argument("--bf16", action="store_true")
p.add_argument("--compile", action="store_true")
a = p.parse_args()
layers = int(a.layers.split("x")[0])
if a.mode == "run-cost":
    result = dict(steps=int(a.steps), evaluations=3, steps_per_epoch=2, total_s=10.0 * layers, eval_s=3.0,
                  first_step_s=1.0)
else:
    result = dict(figures=dict(train_step_s=0.5 * layers, train_samples_per_s=int(a.bsz) / (0.5 * layers),
                               original_samples_per_s=int(a.bsz) / (0.5 * layers), infer_b1_ms=4.0 * layers,
                               infer_big_samples_per_s=100.0 / layers, peak_training_mb=1000.0 * layers,
                               first_train_step_s=1.0, samples_seen_per_step=int(a.bsz)))
result.update(layers=a.layers, bf16=a.bf16, compile=a.compile, device=a.device)
print("RESULT " + json.dumps(result))
"""


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu-harness")
    (root / "qd-detr" / "qd_detr").mkdir(parents=True)
    (root / "qd-detr" / "qd_detr" / "model.py").write_text("")
    driver = root / "driver.py"
    driver.write_text(FAKE_DRIVER)
    out = root / "gpu.json"
    code = load_script("benchmark").main([
        "--device", "cpu", "--quick", "--run-cost", "--variants", "fp32,bf16,rows", "--official-src",
        str(root / "qd-detr"), "--official-driver", str(driver), "--json", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def test_every_measurement_ran_with_consistent_figures(smoke):
    measured = smoke["measurements"]
    assert set(measured["td_detr"]) == {"fp32", "bf16", "rows"}
    assert set(measured["qd_detr_2l"]) == {"fp32", "bf16"}
    assert set(measured["official_2l"]) == {"fp32", "bf16"} and set(measured["official_4l"]) == {"fp32"}
    size, repeats = smoke["settings"]["size"], smoke["settings"]["repeats"]
    for key in ("td_detr", "qd_detr_2l"):
        for variant, result in measured[key].items():
            assert "error" not in result, (key, variant, result.get("error"))
            figures, raw = result["figures"], result["raw"]
            assert len(raw["train_step_s"]) == repeats["train"] and len(raw["infer_b1_s"]) == repeats["infer_b1"]
            assert figures["train_step_s"] == pytest.approx(statistics.median(raw["train_step_s"]))
            assert figures["train_samples_per_s"] == pytest.approx(figures["samples_seen_per_step"] / figures["train_step_s"])
            assert figures["original_samples_per_s"] == pytest.approx(size["batch"] / figures["train_step_s"])
            assert figures["infer_big_samples_per_s"] == pytest.approx(
                size["infer_batch"] / statistics.median(raw["infer_big_s"]))
            assert all(math.isfinite(v) and v >= 0 for v in figures.values() if not isinstance(v, bool))
            assert figures["resident_features"] == (variant != "rows")
    # TD-DETR synthesizes (2·B rows seen), the baseline does not
    assert measured["td_detr"]["fp32"]["figures"]["samples_seen_per_step"] == 2 * size["batch"]
    assert measured["qd_detr_2l"]["fp32"]["figures"]["samples_seen_per_step"] == size["batch"]
    assert smoke["device"]["device"] == "cpu" and smoke["device"]["torch"] and not smoke["skipped"]


def test_ratios_are_ours_over_the_official_figures_of_the_same_variant(smoke):
    ratios = {ratio["name"]: ratio["value"] for ratio in smoke["ratios"]}
    td_detr, baseline = smoke["measurements"]["td_detr"], smoke["measurements"]["qd_detr_2l"]
    official_2l_train = smoke["settings"]["size"]["batch"] / 1.0  # fake: 0.5 s per step per layer, 2 layers
    assert ratios["train samples/s (original queries): TD-DETR / official 2/2 (fp32)"] == pytest.approx(
        td_detr["fp32"]["figures"]["original_samples_per_s"] / official_2l_train)
    assert ratios["inference b=256 samples/s: QD-DETR baseline ours / official 2/2 (bf16)"] == pytest.approx(
        baseline["bf16"]["figures"]["infer_big_samples_per_s"] / 50.0)
    assert ratios["b=1 latency: TD-DETR / official 2/2 (bf16)"] == pytest.approx(
        td_detr["bf16"]["figures"]["infer_b1_ms"] / 8.0)
    assert not any("compile" in name for name in ratios)  # not measured here (minutes on a CPU), so no ratio


def test_run_cost_is_timed_and_extrapolated_to_the_qvhighlights_schedule(smoke):
    schedule = smoke["run_cost_schedule"]
    assert schedule == dict(epochs=200, steps_per_epoch=452, total_steps=90_400, evaluations=200, batch_size=32)
    ours = smoke["run_costs"]["ours.fp32"]
    quick = smoke["settings"]["run_cost"]
    assert ours["steps"] == quick["steps"] and ours["evaluations"] >= 1 and ours["eval_s"] > 0
    assert 0 < ours["first_step_s"] < ours["total_s"]
    official = smoke["run_costs"]["official_2l.fp32"]["extrapolated"]
    # fake official: 20 s total, 3 s in 3 evaluations, 1 s first step, 5 steps -> 4 s per step after the first
    assert official["train_step_s"] == pytest.approx(4.0) and official["evaluation_s"] == pytest.approx(1.0)
    assert official["run_minutes"] == pytest.approx((1.0 + 90_399 * 4.0 + 200 * 1.0) / 60)
    ratio = {r["name"]: r["value"] for r in smoke["ratios"]}["QVHighlights run minutes: ours / official 2/2 (fp32)"]
    assert ratio == pytest.approx(ours["extrapolated"]["run_minutes"] / official["run_minutes"])


def test_budget_skips_the_remaining_tasks_and_bad_input_exits_2(tmp_path, capsys):
    module = load_script("benchmark_gpu")
    with pytest.raises(SystemExit) as error:
        module.main(["--device", "cpu", "--configs", "td_detr,nope"])
    assert error.value.code == 2 and "unknown configs / variants: nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        module.main(["--device", "cpu", "--official-src", str(tmp_path)])
    assert error.value.code == 2 and "no qd_detr/model.py" in capsys.readouterr().err
    out = tmp_path / "budget.json"
    assert module.main(["--device", "cpu", "--quick", "--configs", "qd_detr_2l", "--variants", "fp32,bf16",
                        "--budget-s", "0", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["measurements"] == {} and results["ratios"] == []  # no time left: nothing is started
    assert results["skipped"] == ["measure qd_detr_2l.fp32", "measure qd_detr_2l.bf16"]


def test_cuda_device_without_a_gpu_is_refused(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as error:
        load_script("benchmark_gpu").main(["--device", "cuda"])
    assert error.value.code == 2 and "torch sees no CUDA GPU" in capsys.readouterr().err


def test_a_fresh_process_worker_returns_its_result_and_a_failing_one_its_error():
    """The GPU run measures each variant in its own process (peak memory, compile cache): the worker's RESULT line."""
    module = load_script("benchmark_gpu")
    script = str(module.SCRIPTS / "benchmark_gpu.py")
    result = module.run_worker([script, "--device", "cpu", "--worker", "measure:qd_detr_2l:fp32", "--worker-mode",
                                "quick"], timeout=300)
    assert "error" not in result, result.get("error")
    assert result["figures"]["samples_seen_per_step"] == module.SIZES["tiny"]["batch"] and result["process_s"] > 0
    failed = module.run_worker([script, "--device", "cpu", "--worker", "measure:no_such_config:fp32"], timeout=300)
    assert failed["error"].startswith("exit 1") and "no_such_config" in failed["error"]


def test_run_cost_steps_and_the_task_order():
    """`--run-cost-steps` shortens the timed run (a GPU call has minutes); compiled steps are measured before the run
    cost, since eager steps on a GPU are launch-bound and compilation is what decides the targets."""
    module = load_script("benchmark_gpu")
    parser_args = lambda *flags: argparse.Namespace(  # noqa: E731
        configs=["td_detr", "official_2l"], variants=["fp32", "compile", "bf16"], official_src=Path("x"),
        run_cost=True, run_cost_steps=int(flags[0]) if flags else None)
    assert module.run_cost_settings(parser_args(), "full")["steps"] == 2000
    assert module.run_cost_settings(parser_args("500"), "full") == dict(module.RUN_COST["full"], steps=500)
    order = [" ".join(task) for task in module.plan(parser_args())]
    assert order[:8] == ["measure td_detr fp32", "measure official_2l fp32", "measure td_detr compile",
                         "measure official_2l compile", "measure td_detr bf16", "measure official_2l bf16",
                         "run_cost ours fp32", "run_cost official_2l fp32"]
