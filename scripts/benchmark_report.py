"""What `scripts/benchmark.py` reports: the ratios of each run, the machine, contention warnings and the printed
table."""

from __future__ import annotations

import os
import platform

from benchmark_configs import BF16, COMPILED, CONFIGS

# (name, numerator, denominator): paths into the results; the value is numerator / denominator.
RATIOS = [
    ("train step: TD-DETR / QD-DETR 2L", "configs.td_detr.train_step_s", "configs.qd_detr_2l.train_step_s"),
    ("train step: TD-DETR / QD-DETR arch 4L", "configs.td_detr.train_step_s", "configs.qd_detr_4l.train_step_s"),
    ("train step: synthesis on / off", "configs.td_detr.train_step_s", "configs.td_detr_no_synthesis.train_step_s"),
    ("train step: dynamics (no synth) / QD-DETR arch 4L", "configs.td_detr_no_synthesis.train_step_s",
     "configs.qd_detr_4l.train_step_s"),
    ("train step: QD-DETR 4L / 2L", "configs.qd_detr_4l.train_step_s", "configs.qd_detr_2l.train_step_s"),
    ("seen samples/s: synthesis on / off", "configs.td_detr.train_samples_per_s",
     "configs.td_detr_no_synthesis.train_samples_per_s"),
    ("seen samples/s: TD-DETR / QD-DETR 2L", "configs.td_detr.train_samples_per_s",
     "configs.qd_detr_2l.train_samples_per_s"),
    ("collate: synthesis on / off", "configs.td_detr.collate_s", "configs.td_detr_no_synthesis.collate_s"),
    ("synthesizer share of the TD-DETR step", "configs.td_detr.collate_s", "configs.td_detr.train_step_s"),
    ("infer b=1: TD-DETR / QD-DETR 2L", "configs.td_detr.infer_b1_ms", "configs.qd_detr_2l.infer_b1_ms"),
    ("infer b=1: TD-DETR / QD-DETR arch 4L", "configs.td_detr.infer_b1_ms", "configs.qd_detr_4l.infer_b1_ms"),
    ("infer b=1: same model measured twice (noise)", "configs.td_detr.infer_b1_ms",
     "configs.td_detr_no_synthesis.infer_b1_ms"),
    ("infer b=32 samples/s: TD-DETR / QD-DETR 2L", "configs.td_detr.infer_b32_samples_per_s",
     "configs.qd_detr_2l.infer_b32_samples_per_s"),
    ("infer b=32 samples/s: TD-DETR / QD-DETR arch 4L", "configs.td_detr.infer_b32_samples_per_s",
     "configs.qd_detr_4l.infer_b32_samples_per_s"),
    ("parameters: TD-DETR / QD-DETR 2L", "configs.td_detr.parameters", "configs.qd_detr_2l.parameters"),
    ("parameters: TD-DETR / QD-DETR arch 4L", "configs.td_detr.parameters", "configs.qd_detr_4l.parameters"),
    ("peak RSS training: TD-DETR / QD-DETR 2L", "configs.td_detr.peak_rss_training_mb",
     "configs.qd_detr_2l.peak_rss_training_mb"),
    ("peak RSS training: synthesis on / off", "configs.td_detr.peak_rss_training_mb",
     "configs.td_detr_no_synthesis.peak_rss_training_mb"),
    ("peak RSS training: TD-DETR / QD-DETR arch 4L", "configs.td_detr.peak_rss_training_mb",
     "configs.qd_detr_4l.peak_rss_training_mb"),
    ("peak RSS training: TD-DETR checkpointing / QD-DETR arch 4L", "configs.td_detr_checkpointing.peak_rss_training_mb",
     "configs.qd_detr_4l.peak_rss_training_mb"),
    ("train step: TD-DETR checkpointing / plain", "configs.td_detr_checkpointing.train_step_s",
     "configs.td_detr.train_step_s"),
    ("peak RSS training: TD-DETR row chunks / QD-DETR arch 4L", "configs.td_detr_row_chunks.peak_rss_training_mb",
     "configs.qd_detr_4l.peak_rss_training_mb"),
    ("train step: TD-DETR row chunks / plain", "configs.td_detr_row_chunks.train_step_s",
     "configs.td_detr.train_step_s"),
    ("scoring: naive loop / vectorised", "scoring.naive_s", "scoring.vectorised_s"),
]


# Ours against the official code, both measured in this run (only with --official-src).
OFFICIAL_RATIOS = [
    ("train step 2/2/2: ours / official", "configs.qd_detr_2l.train_step_s", "configs.official_2l.train_step_s"),
    ("train step 4/4/4: ours / official", "configs.qd_detr_4l.train_step_s", "configs.official_4l.train_step_s"),
    ("TD-DETR step per row seen / official 4/4/4 step per row", "configs.td_detr.train_step_per_row_s",
     "configs.official_4l.train_step_per_row_s"),
    ("TD-DETR row chunks step per row seen / official 4/4/4 step per row",
     "configs.td_detr_row_chunks.train_step_per_row_s", "configs.official_4l.train_step_per_row_s"),
    ("infer b=1 2/2/2: ours / official", "configs.qd_detr_2l.infer_b1_ms", "configs.official_2l.infer_b1_ms"),
    ("infer b=1 4/4/4: ours / official", "configs.qd_detr_4l.infer_b1_ms", "configs.official_4l.infer_b1_ms"),
    ("infer b=1 TD-DETR / official 4/4/4", "configs.td_detr.infer_b1_ms", "configs.official_4l.infer_b1_ms"),
    ("infer b=32 samples/s 4/4/4: ours / official", "configs.qd_detr_4l.infer_b32_samples_per_s",
     "configs.official_4l.infer_b32_samples_per_s"),
    ("peak RSS training 4/4/4: ours / official", "configs.qd_detr_4l.peak_rss_training_mb",
     "configs.official_4l.peak_rss_training_mb"),
    ("peak RSS training: TD-DETR / official 4/4/4", "configs.td_detr.peak_rss_training_mb",
     "configs.official_4l.peak_rss_training_mb"),
    ("parameters 2/2/2: ours / official", "configs.qd_detr_2l.parameters", "configs.official_2l.parameters"),
]


# With --bf16: our configs under bf16 autocast against the official code in fp32 (the issue's targets) and under the
# same autocast (how much is the dtype, how much our code), and against themselves in fp32.
BF16_RATIOS = [
    (f"{what}: ours bf16 / official {precision}", f"configs.{ours}{BF16}.{figure}", f"configs.{official}{suffix}.{figure}")
    for precision, suffix in (("fp32", ""), ("bf16", BF16))
    for what, ours, official, figure in (
        ("train step 2/2/2", "qd_detr_2l", "official_2l", "train_step_s"),
        ("train step 4/4/4", "qd_detr_4l", "official_4l", "train_step_s"),
        ("TD-DETR step per row seen / official 4/4/4 per row", "td_detr", "official_4l", "train_step_per_row_s"),
        ("infer b=1 2/2/2", "qd_detr_2l", "official_2l", "infer_b1_ms"),
        ("infer b=1 4/4/4", "qd_detr_4l", "official_4l", "infer_b1_ms"),
        ("peak RSS training 4/4/4", "qd_detr_4l", "official_4l", "peak_rss_training_mb"),
    )
] + [
    ("official train step 2/2/2: bf16 / fp32", f"configs.official_2l{BF16}.train_step_s", "configs.official_2l.train_step_s"),
    ("official train step 4/4/4: bf16 / fp32", f"configs.official_4l{BF16}.train_step_s", "configs.official_4l.train_step_s"),
] + [
    (f"{name}: bf16 / fp32", f"configs.{key}{BF16}.{figure}", f"configs.{key}.{figure}")
    for key in CONFIGS
    for name, figure in ((f"train step {key}", "train_step_s"), (f"infer b=1 {key}", "infer_b1_ms"),
                         (f"peak RSS training {key}", "peak_rss_training_mb"))
] + [
    ("peak RSS training bf16: TD-DETR / QD-DETR arch 4L", f"configs.td_detr{BF16}.peak_rss_training_mb",
     f"configs.qd_detr_4l{BF16}.peak_rss_training_mb"),
    ("train step bf16: TD-DETR / QD-DETR arch 4L", f"configs.td_detr{BF16}.train_step_s",
     f"configs.qd_detr_4l{BF16}.train_step_s"),
    ("peak RSS training bf16: TD-DETR row chunks / QD-DETR arch 4L", f"configs.td_detr_row_chunks{BF16}.peak_rss_training_mb",
     f"configs.qd_detr_4l{BF16}.peak_rss_training_mb"),
    ("TD-DETR row chunks step per row seen / official 4/4/4 per row: ours bf16 / official fp32",
     f"configs.td_detr_row_chunks{BF16}.train_step_per_row_s", "configs.official_4l.train_step_per_row_s"),
]


def machine_description(threads: int) -> dict:
    import torch
    import transformers

    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        ram_kib = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    return dict(nproc=os.cpu_count(), cpu=cpu, ram_gib=round(ram_kib / 2**20, 1), python=platform.python_version(),
                torch=torch.__version__, transformers=transformers.__version__, threads=threads)


def lookup(results: dict, path: str) -> float:
    """The number at a dotted path (``configs.<key>.<figure>`` or ``scoring.<figure>``)."""
    section, *rest = path.split(".")
    if section == "configs":
        return results["configs"][rest[0]]["figures"][rest[1]]
    return results["scoring"]["figures"][rest[0]]


def run_ratios(results: dict, official: bool, bf16: bool, compiled: list[str]) -> list[dict]:
    """Every ratio whose two figures this run measured (the official and bf16 ones when measured), then torch.compile
    / eager for each config in `compiled`."""
    def measured_here(path: str) -> bool:
        return not path.startswith("configs.") or path.split(".")[1] in results["configs"]

    ratios = [
        dict(name=name, numerator=num, denominator=den, value=lookup(results, num) / lookup(results, den))
        for name, num, den in RATIOS + (OFFICIAL_RATIOS if official else []) + (BF16_RATIOS if bf16 else [])
        if measured_here(num) and measured_here(den)
    ]
    for key in compiled:
        ratios.append(dict(
            name=f"train step {key}: torch.compile / eager", numerator=f"configs.{key}{COMPILED}.train_step_s",
            denominator=f"configs.{key}.train_step_s",
            value=lookup(results, f"configs.{key}{COMPILED}.train_step_s") / lookup(results, f"configs.{key}.train_step_s")))
    return ratios


def print_report(results: dict) -> None:
    settings, machine = results["settings"], results["machine"]
    print(f"{machine['cpu']}, {machine['nproc']} CPUs, {machine['ram_gib']} GiB; torch {machine['torch']}, "
          f"transformers {machine['transformers']}; {machine['threads']} threads; load average "
          f"{results['load_average_before'][0]:.2f} before, {results['load_average_after'][0]:.2f} after")
    print(f"mode {settings['mode']}: batch {settings['batch']} x {settings['clips']} clips x {settings['tokens']} tokens, "
          f"video {settings['video_dim']}-d, text {settings['text_dim']}-d; medians of "
          + ", ".join(f"{n} {k}" for k, n in settings["repeats"].items() if "warmup" not in k)
          + f" (after {settings['repeats']['warmup']} warm-up)"
          + (f"; each config's fastest of {settings['rounds']} rounds" if settings["rounds"] > 1 else ""))
    if settings.get("memory", "").startswith("one process"):
        print("peak RSS: all configs in one process, so each figure includes the configs measured before it")
    header = (f"{'config':36s} {'params':>8s} {'seen':>5s} {'step s':>7s} {'best':>6s} {'collate':>8s} {'share':>6s} {'seen/s':>7s} "
              f"{'orig/s':>7s} {'b=1 ms':>7s} {'b=32/s':>7s} {'RSS inf':>8s} {'RSS train':>9s}")
    print(header)
    for result in results["configs"].values():
        f = result["figures"]
        collate = f"{f['collate_s']:8.3f} {100 * f['collate_share']:5.1f}%" if "collate_s" in f else f"{'-':>8s} {'-':>6s}"
        print(f"{result['label']:36s} {f['parameters'] / 1e6:7.2f}M {f['samples_seen_per_step']:5.0f} "
              f"{f['train_step_s']:7.3f} {f['train_step_min_s']:6.2f} {collate} "
              f"{f['train_samples_per_s']:7.1f} {f['original_samples_per_s']:7.1f} {f['infer_b1_ms']:7.1f} "
              f"{f['infer_b32_samples_per_s']:7.1f} {f['peak_rss_inference_mb']:6.0f}MB {f['peak_rss_training_mb']:7.0f}MB")
    if settings.get("clock") == "cpu":
        print("times are CPU seconds of each measuring process (--clock cpu), not wall seconds")
    print(f"our configs: dropout_implementation={settings['dropout_implementation']}; official step = the official "
          "train loop's (pre-collated batches), ours includes collate")
    for key, result in results["configs"].items():
        if "compile_training_s" in result["figures"]:
            print(f"{key}: compile {result['figures']['compile_training_s']:.1f} s (first training step), "
                  f"{result['figures']['compile_inference_s']:.1f} s (first inferences)")
    print("load average / CPU per wall second: " + ", ".join(
        f"{key} {r['conditions']['load_average_before']:.2f}->{r['conditions']['load_average_after']:.2f} / "
        f"{r['conditions'].get('training_cpu_per_wall', r['conditions'].get('process_cpu_per_wall', 0)):.2f}"
        for key, r in results["configs"].items()))
    if settings["rounds"] > 1:
        print("train step medians per round: " + ", ".join(
            f"{key} " + "/".join(f"{t:.2f}" for t in r["conditions"]["round_train_step_s"])
            for key, r in results["configs"].items()))
    scoring = results["scoring"]["figures"]
    print(f"scoring {scoring['queries']} queries ({results['scoring']['source']}): vectorised {scoring['vectorised_s']:.3f} s, "
          f"naive loop {scoring['naive_s']:.3f} s (identical metrics)")
    for warning in results["warnings"]:
        print(f"WARNING {warning}")
    print("ratios (all from this run):")
    for ratio in results["ratios"]:
        print(f"  {ratio['name']:80s} {ratio['value']:7.3f}")


def contention_warnings(results: dict) -> list[str]:
    """Signs that other work shared the cores. With 2 threads on 2 busy cores every parallel op waits for a
    descheduled thread (ms each), which can slow a step tens of times; such figures are not the code's."""
    threads, warnings = results["machine"]["threads"], []
    for key, result in results["configs"].items():
        conditions = result["conditions"]
        cpu_per_wall = conditions.get("training_cpu_per_wall", conditions.get("process_cpu_per_wall"))
        if cpu_per_wall < 0.8 * min(threads, results["machine"]["nproc"]):
            warnings.append(f"{key}: got {cpu_per_wall:.2f} CPU s per s with "
                            f"{threads} threads (load {conditions['load_average_before']:.2f}): cores were shared")
    return warnings
