"""`scripts/benchmark.py --dry-run --json` (with benchmark_configs.py, benchmark_measure.py, benchmark_official.py and
benchmark_report.py beside it): every figure present and positive, ratios equal to the raw numbers; with
`--official-src`, the official driver's figures enter the same run and the ours / official ratios."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from script_utils import load_script

pytestmark = pytest.mark.slow  # the script runs in a subprocess

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"
CONFIG_KEYS = ("td_detr", "td_detr_no_synthesis", "qd_detr_2l", "qd_detr_4l", "td_detr_checkpointing",
               "td_detr_row_chunks")
CONFIG_FIGURES = (
    "parameters", "samples_seen_per_step", "train_step_s", "train_step_min_s", "collate_s", "collate_share",
    "train_samples_per_s", "original_samples_per_s", "infer_b1_ms", "infer_b32_s", "infer_b32_samples_per_s",
    "peak_rss_setup_mb", "peak_rss_inference_mb", "peak_rss_training_mb", "train_step_per_row_s",
)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark") / "figures.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def resolve(results: dict, path: str) -> float:
    section, *rest = path.split(".")
    if section == "configs":
        return results["configs"][rest[0]]["figures"][rest[1]]
    assert section == "scoring", path
    return results["scoring"]["figures"][rest[0]]


def test_every_figure_is_present_and_positive(dry_run):
    results, _ = dry_run
    assert set(results["configs"]) == set(CONFIG_KEYS)
    for key in CONFIG_KEYS:
        figures = results["configs"][key]["figures"]
        assert set(CONFIG_FIGURES) <= set(figures), (key, set(CONFIG_FIGURES) - set(figures))
        for name in CONFIG_FIGURES:
            assert math.isfinite(figures[name]) and figures[name] > 0, (key, name, figures[name])
    scoring = results["scoring"]["figures"]
    assert scoring["queries"] == 40 and results["scoring"]["source"] == "generated"
    assert scoring["vectorised_s"] > 0 and scoring["naive_s"] > 0
    assert "targets" not in results  # no fixed figures: the official code is measured in the run, or not at all
    for field in ("nproc", "cpu", "ram_gib", "torch", "transformers", "threads"):
        assert results["machine"][field], field
    assert len(results["load_average_before"]) == 3 and len(results["load_average_after"]) == 3


def test_figures_agree_with_the_raw_timings_and_each_other(dry_run):
    results, _ = dry_run
    settings = results["settings"]
    batch, repeats = settings["batch"], settings["repeats"]
    for key in CONFIG_KEYS:
        figures, raw = results["configs"][key]["figures"], results["configs"][key]["raw"]
        # medians of exactly the measured repeats (warm-up excluded)
        assert len(raw["train_step_s"]) == len(raw["collate_s"]) == repeats["train"]
        assert len(raw["infer_b1_s"]) == repeats["infer_b1"] and len(raw["infer_b32_s"]) == repeats["infer_b32"]
        assert figures["train_step_s"] == pytest.approx(statistics.median(raw["train_step_s"]))
        assert figures["train_step_min_s"] == pytest.approx(min(raw["train_step_s"]))
        assert figures["collate_s"] == pytest.approx(statistics.median(raw["collate_s"]))
        assert figures["infer_b1_ms"] == pytest.approx(1000 * statistics.median(raw["infer_b1_s"]))
        # derived figures
        step = figures["train_step_s"]
        assert figures["collate_share"] == pytest.approx(figures["collate_s"] / step) and figures["collate_share"] < 1
        assert all(c < s for c, s in zip(raw["collate_s"], raw["train_step_s"]))  # collate is part of the step
        assert figures["train_samples_per_s"] == pytest.approx(figures["samples_seen_per_step"] / step)
        assert figures["original_samples_per_s"] == pytest.approx(batch / step)
        assert figures["infer_b32_samples_per_s"] == pytest.approx(batch / figures["infer_b32_s"])
        assert figures["peak_rss_setup_mb"] <= figures["peak_rss_inference_mb"] <= figures["peak_rss_training_mb"]
    configs = {key: results["configs"][key]["figures"] for key in CONFIG_KEYS}
    # Only the synthesizer grows the batch; synthesis does not change the model.
    assert batch < configs["td_detr"]["samples_seen_per_step"] <= 2 * batch
    unsynthesized = ("td_detr_no_synthesis", "qd_detr_2l", "qd_detr_4l")
    assert all(configs[key]["samples_seen_per_step"] == batch for key in unsynthesized)
    assert configs["td_detr"]["parameters"] == configs["td_detr_no_synthesis"]["parameters"]
    assert configs["td_detr"]["parameters"] == configs["td_detr_checkpointing"]["parameters"]
    assert configs["td_detr"]["parameters"] == configs["td_detr_row_chunks"]["parameters"]
    assert configs["qd_detr_2l"]["parameters"] < configs["qd_detr_4l"]["parameters"] < configs["td_detr"]["parameters"]


def test_ratios_equal_their_numerator_over_denominator(dry_run):
    results, _ = dry_run
    ratios = {ratio["name"]: ratio for ratio in results["ratios"]}
    assert len(ratios) == len(results["ratios"])  # names are unique
    for ratio in ratios.values():
        expected = resolve(results, ratio["numerator"]) / resolve(results, ratio["denominator"])
        assert ratio["value"] == pytest.approx(expected) and ratio["value"] > 0, ratio["name"]
    pairs = {(r["numerator"], r["denominator"]) for r in ratios.values()}
    # the comparisons the benchmark exists for
    for needed in [
        ("configs.td_detr.train_step_s", "configs.qd_detr_2l.train_step_s"),
        ("configs.td_detr.train_step_s", "configs.qd_detr_4l.train_step_s"),
        ("configs.td_detr.train_step_s", "configs.td_detr_no_synthesis.train_step_s"),
        ("configs.td_detr.collate_s", "configs.td_detr.train_step_s"),
        ("configs.td_detr.infer_b1_ms", "configs.qd_detr_2l.infer_b1_ms"),
        ("configs.td_detr.infer_b32_samples_per_s", "configs.qd_detr_4l.infer_b32_samples_per_s"),
        ("scoring.naive_s", "scoring.vectorised_s"),
        ("configs.td_detr.peak_rss_training_mb", "configs.qd_detr_4l.peak_rss_training_mb"),
    ]:
        assert needed in pairs, needed


def test_report_prints_the_figures_and_every_ratio(dry_run):
    results, stdout = dry_run
    for key in CONFIG_KEYS:
        assert results["configs"][key]["label"] in stdout
    assert not any("official" in ratio["name"] for ratio in results["ratios"])  # none without --official-src
    for ratio in results["ratios"]:
        assert ratio["name"] in stdout


def test_worker_mode_prints_one_config_as_its_last_json_line(capsys):
    """The fresh-process path (full runs): a worker measures one config and prints it as the last stdout line."""
    module = load_script("benchmark")
    code = module.main(["--worker", "qd_detr_2l", "--worker-size", "tiny", "--worker-mode", "dry", "--threads", "1"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["label"] == "QD-DETR baseline 2/2/2" and result["conditions"]["threads"] == 1
    figures = result["figures"]
    assert all(figures[name] > 0 for name in CONFIG_FIGURES)
    tiny = load_script("benchmark_configs").SIZES["tiny"]
    assert figures["samples_seen_per_step"] == tiny["batch"]  # the baseline never synthesizes


# A stand-in for the official-code driver (../shared/reference/qd_detr_speed.py): same command line, same RESULT line;
# its step time depends on the variant so the ratios can be checked against known numbers.
FAKE_DRIVER = """
import argparse, json
p = argparse.ArgumentParser()
for name in ("--src", "--child", "--threads", "--bsz", "--clips", "--warmup", "--train-steps", "--latency-iters",
             "--throughput-iters"):
    p.add_argument(name)
a = p.parse_args()
layers = int(a.child.split("x")[0])
print("RESULT " + json.dumps(dict(
    variant=a.child, threads=int(a.threads), torch="x", bsz=int(a.bsz), txt_len_padded=32, v_feat_dim=2818,
    params=1000 * layers, train_ms_per_step=1000.0 * layers, train_ms_min=900.0 * layers,
    infer_b1_ms=10.0 * layers, infer_b32_ms=100.0 * layers, infer_b32_samples_per_s=int(a.bsz) / (0.1 * layers),
    peak_rss_mb_infer=500.0, peak_rss_mb_train=800.0 * layers)))
"""


def test_official_code_is_measured_in_the_same_run(tmp_path):
    source = tmp_path / "qd-detr"
    (source / "qd_detr").mkdir(parents=True)
    (source / "qd_detr" / "model.py").write_text("")
    driver = tmp_path / "qd_detr_speed.py"
    driver.write_text(FAKE_DRIVER)
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--json", str(out), "--official-src", str(source)],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    official = {key: results["configs"][key]["figures"] for key in ("official_2l", "official_4l")}
    assert official["official_2l"]["train_step_s"] == 2.0 and official["official_4l"]["train_step_s"] == 4.0
    assert official["official_4l"]["train_step_per_row_s"] == pytest.approx(4.0 / 4)  # dry-run batch of 4
    ratios = {ratio["name"]: ratio["value"] for ratio in results["ratios"]}
    ours = {key: results["configs"][key]["figures"] for key in CONFIG_KEYS}
    assert ratios["train step 2/2/2: ours / official"] == pytest.approx(ours["qd_detr_2l"]["train_step_s"] / 2.0)
    assert ratios["train step 4/4/4: ours / official"] == pytest.approx(ours["qd_detr_4l"]["train_step_s"] / 4.0)
    per_row = ours["td_detr"]["train_step_s"] / ours["td_detr"]["samples_seen_per_step"]
    assert ratios["TD-DETR step per row seen / official 4/4/4 step per row"] == pytest.approx(per_row / 1.0)
    for name in ratios:
        assert name in done.stdout


def test_official_source_must_exist(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--official-src", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--official-src" in done.stderr and "not found" in done.stderr


def test_cpu_clock_boot_makes_the_official_driver_time_cpu_seconds(tmp_path):
    """`--clock cpu` starts the official driver through a boot line: its perf_counter reads process CPU time, and
    it still sees its own path and arguments."""
    probe = tmp_path / "probe.py"
    probe.write_text("import sys, time\nprint(time.perf_counter is time.process_time, sys.argv[0].endswith('probe.py'),"
                     " sys.argv[1:], __name__)\n")
    module = load_script("benchmark_official")
    assert module.official_boot(cpu_clock=False, bf16=False) == []  # the driver runs plainly
    boot = module.official_boot(cpu_clock=True, bf16=False)
    done = subprocess.run([sys.executable, *boot, str(probe), "--child", "2x2"], capture_output=True, text=True, timeout=60)
    assert done.stdout.split("\n")[0] == "True True ['--child', '2x2'] __main__", done.stderr


# The official model class name and a loss computed on its outputs, as the official driver does.
BF16_PROBE = """
import sys, torch
from torch import nn
class QDDETR(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
    def forward(self, x):
        inner = self.linear(x)
        return {"pred_logits": inner, "aux_outputs": [{"pred_spans": inner * 2}], "mask": x > 0}
out = QDDETR()(torch.randn(3, 4))
other = nn.Linear(4, 4)(torch.randn(3, 4))  # any other module stays outside autocast
print(out["pred_logits"].dtype, out["aux_outputs"][0]["pred_spans"].dtype, out["mask"].dtype, other.dtype,
      torch.is_autocast_cpu_enabled(), sys.argv[1:])
"""


def test_bf16_boot_runs_the_official_forward_under_autocast_and_returns_fp32(tmp_path):
    """`--bf16`: the official `QDDETR` forward runs under bf16 autocast (its linear layers in bf16, rounded values),
    its outputs come back as fp32 for the official criterion, and nothing else is under autocast."""
    probe = tmp_path / "probe.py"
    probe.write_text(BF16_PROBE.replace("inner = self.linear(x)",
                                        "inner = self.linear(x)\n        print(inner.dtype)"))
    module = load_script("benchmark_official")
    for cpu_clock in (False, True):
        done = subprocess.run([sys.executable, *module.official_boot(cpu_clock=cpu_clock, bf16=True), str(probe), "-x"],
                              capture_output=True, text=True, timeout=60)
        assert done.stdout.split("\n")[:2] == [
            "torch.bfloat16", "torch.float32 torch.float32 torch.bool torch.float32 False ['-x']"], done.stderr


def test_bf16_variants_are_measured_beside_fp32_and_the_official_code(tmp_path):
    """`--bf16`: each config of ours and each official model also under bf16 autocast, in the same run, with the
    ratios ours bf16 / official fp32, ours bf16 / official bf16 and bf16 / fp32."""
    source = tmp_path / "qd-detr"
    (source / "qd_detr").mkdir(parents=True)
    (source / "qd_detr" / "model.py").write_text("")
    (tmp_path / "qd_detr_speed.py").write_text(FAKE_DRIVER)
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--json", str(out), "--official-src", str(source), "--bf16",
         "--configs", "qd_detr_2l,qd_detr_4l,td_detr"],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["configs"]) == {f"{key}{suffix}" for key in ("qd_detr_2l", "qd_detr_4l", "td_detr",
                                                                     "official_2l", "official_4l")
                                       for suffix in ("", "_bf16")}
    assert results["configs"]["qd_detr_2l_bf16"]["label"].endswith("bf16 autocast")
    assert results["configs"]["official_4l_bf16"]["label"] == "official QD-DETR 4/4/4, bf16 autocast"
    figures = {key: result["figures"] for key, result in results["configs"].items()}
    ratios = {ratio["name"]: ratio["value"] for ratio in results["ratios"]}
    assert ratios["train step 2/2/2: ours bf16 / official fp32"] == pytest.approx(
        figures["qd_detr_2l_bf16"]["train_step_s"] / figures["official_2l"]["train_step_s"])
    assert ratios["train step 4/4/4: ours bf16 / official bf16"] == pytest.approx(
        figures["qd_detr_4l_bf16"]["train_step_s"] / figures["official_4l_bf16"]["train_step_s"])
    assert ratios["peak RSS training bf16: TD-DETR / QD-DETR arch 4L"] == pytest.approx(
        figures["td_detr_bf16"]["peak_rss_training_mb"] / figures["qd_detr_4l_bf16"]["peak_rss_training_mb"])
    assert ratios["train step qd_detr_2l: bf16 / fp32"] == pytest.approx(
        figures["qd_detr_2l_bf16"]["train_step_s"] / figures["qd_detr_2l"]["train_step_s"])
    assert all(name in done.stdout for name in ratios)
