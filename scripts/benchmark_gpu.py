"""GPU benchmark of TD-DETR beside the official QD-DETR code on the same device (``scripts/benchmark.py --device``).

For each of our configs (``td_detr``: the default TD-DETR with synthesis; ``qd_detr_2l``: the QD-DETR baseline) and
each official model (``--official-src``: the official code's 2/2 and 4/4 layers, timed by
``scripts/official_qd_detr_gpu.py``), and each precision / compile variant (fp32, bf16 autocast, torch.compile, both):

* training samples/s at batch 32 (QVHighlights shapes: 75 clips x 2,818, text 32 x 512). Our step: the training
  collator with the synthesizer, features resident on the device (``--features-on-device``), forward + loss +
  backward + clip 0.1 + AdamW (fused on CUDA, the Trainer's default); the ``td_detr`` ``rows`` variant collates from
  host rows instead and copies the batch over. Ours sees 2·B synthesized rows per step, so samples/s are given per row
  seen and per original query;
* batch-1 latency and batch-256 inference throughput (eval-mode forward on pre-collated device batches);
* peak device memory of the inference and training phases (``torch.cuda.max_memory_allocated``).

Timing: ``torch.cuda.synchronize()`` around every timed call, medians after warm-up; the first call (compilation)
is reported apart. Each measurement runs in a fresh process (its own peak memory and compile cache) unless
``--quick``, which also shrinks every size (a CPU smoke run: ``--device cpu --quick``). ``--run-cost`` also times
~2,000 training steps at QVHighlights scale with evaluation every epoch, ours (``scripts/run_cost.py``) and the
official code's, and extrapolates both to the QVHighlights schedule (90,400 steps, 200 evaluations).

    python scripts/benchmark.py --device cuda --official-src .gpu-carry/qd-detr --run-cost --json gpu.json
    python scripts/benchmark.py --device cpu --quick --json smoke.json            # every code path, tiny sizes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

VARIANTS = {"fp32": (False, False), "bf16": (True, False), "compile": (False, True), "bf16_compile": (True, True)}
OURS = ("td_detr", "qd_detr_2l")
OFFICIAL = {"official_2l": "2x2", "official_4l": "4x4"}
SIZES = {
    "real": dict(batch=32, infer_batch=256, clips=75, tokens=32, video_dims=(2304, 512), text_dim=512, model={}),
    "tiny": dict(batch=4, infer_batch=8, clips=20, tokens=6, video_dims=(16, 8), text_dim=8,
                 model=dict(hidden_size=16, num_attention_heads=2, ffn_dim=32, num_queries=5)),
}
REPEATS = {"full": dict(warmup=5, train=30, infer_b1=50, infer_big=10),
           "quick": dict(warmup=1, train=2, infer_b1=2, infer_big=1)}
# --run-cost at QVHighlights scale (7,218 training queries, 1,550 validation queries) or, with --quick, tiny.
RUN_COST = {"full": dict(steps=2000, train_queries=7218, val_queries=1550),
            "quick": dict(steps=5, train_queries=8, val_queries=6)}
# (name, numerator, denominator) over "<key>.<variant>.<figure>"; a ratio is listed when both sides were measured.
RATIOS = [
    ("train samples/s (original queries): TD-DETR / official 2/2", "td_detr.{v}.original_samples_per_s",
     "official_2l.{v}.train_samples_per_s"),
    ("train samples/s: QD-DETR baseline ours / official 2/2", "qd_detr_2l.{v}.train_samples_per_s",
     "official_2l.{v}.train_samples_per_s"),
    ("train rows seen/s: TD-DETR / official 4/4", "td_detr.{v}.train_samples_per_s", "official_4l.{v}.train_samples_per_s"),
    ("inference b=256 samples/s: TD-DETR / official 2/2", "td_detr.{v}.infer_big_samples_per_s",
     "official_2l.{v}.infer_big_samples_per_s"),
    ("inference b=256 samples/s: QD-DETR baseline ours / official 2/2", "qd_detr_2l.{v}.infer_big_samples_per_s",
     "official_2l.{v}.infer_big_samples_per_s"),
    ("b=1 latency: TD-DETR / official 2/2", "td_detr.{v}.infer_b1_ms", "official_2l.{v}.infer_b1_ms"),
    ("peak training memory: TD-DETR / official 2/2", "td_detr.{v}.peak_training_mb", "official_2l.{v}.peak_training_mb"),
]


def synchronizer(device: str):
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def peak_mb(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def to_device(value, device):
    """Tensors in nested dicts / lists moved to ``device`` (what the Trainer's ``_prepare_inputs`` does)."""
    if hasattr(value, "to"):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, list):
        return [to_device(item, device) for item in value]
    return value


def measure_ours(key: str, variant: str, size: dict, repeats: dict, device: str) -> dict:
    """One of our configs under one variant (module docstring); ``variant`` may also be ``rows``: fp32 with the
    batch collated from host rows and copied over."""
    import torch

    from benchmark_configs import build_config, size_rows
    from td_detr import TDDetrForMomentRetrieval
    from td_detr.devices import compile_model
    from td_detr.data.collator import DataCollatorForMomentRetrieval
    from td_detr.data.resident import ResidentVideoFeatures

    bf16, compiled = VARIANTS.get(variant, (False, False))
    sync, clock = synchronizer(device), time.perf_counter
    config = build_config(key, size, "torch")
    rows = size_rows(size, seed=0, batch=4 * size["batch"])
    big = size_rows(size, seed=1, batch=size["infer_batch"])
    torch.manual_seed(0)
    model = TDDetrForMomentRetrieval(config).to(device)
    resident = None
    if variant != "rows":
        resident = ResidentVideoFeatures.from_arrays({row["vid"]: row["video_features"].numpy() for row in rows}, device)
        rows = [{k: v for k, v in row.items() if k != "video_features"} for row in rows]
    train_collator = DataCollatorForMomentRetrieval.from_config(config, training=True, resident=resident)
    eval_collator = DataCollatorForMomentRetrieval.from_config(config, training=False)
    batches = [rows[k * size["batch"] : (k + 1) * size["batch"]] for k in range(4)]
    if compiled:  # as `td-detr train --compile`
        compile_model(model)
    autocast = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    strip = lambda batch: to_device({k: v for k, v in batch.items() if k not in ("labels", "meta")}, device)  # noqa: E731
    single, full = strip(eval_collator(big[:1])), strip(eval_collator(big))
    figures = {}

    def timed(call, count, warmup):
        times = []
        for i in range(warmup + count):
            sync()
            start = clock()
            call()
            sync()
            if i >= warmup:
                times.append(clock() - start)
        return times

    model.eval()
    with torch.no_grad(), autocast():
        figures["first_inference_s"] = sum(timed(lambda b=b: model(**b), 1, 0)[0] for b in (single, full))
        reset_peak(device)
        latencies = timed(lambda: model(**single), repeats["infer_b1"], 5)
        throughput = timed(lambda: model(**full), repeats["infer_big"], 2)
    figures["peak_inference_mb"] = peak_mb(device)

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, fused=device == "cuda")
    seen = []
    step_index = iter(range(10**9))

    def step():
        batch = train_collator(batches[next(step_index) % len(batches)])
        batch.pop("meta")
        labels = batch.pop("labels")  # on the host, as TDDetrTrainer._prepare_inputs leaves them
        batch = dict(to_device(batch, device), labels=labels)
        seen.append(batch["video_features"].shape[0])
        with autocast():
            loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()

    figures["first_train_step_s"] = timed(step, 1, 0)[0]
    reset_peak(device)
    steps = timed(step, repeats["train"], repeats["warmup"])
    step_s, rows_seen = statistics.median(steps), statistics.median(seen[1 + repeats["warmup"]:])
    b1, big_s = statistics.median(latencies), statistics.median(throughput)
    figures.update(
        parameters=sum(p.numel() for p in model.parameters()), train_step_s=step_s, samples_seen_per_step=rows_seen,
        train_samples_per_s=rows_seen / step_s, original_samples_per_s=size["batch"] / step_s, infer_b1_ms=1000 * b1,
        infer_big_samples_per_s=size["infer_batch"] / big_s, peak_training_mb=peak_mb(device),
        resident_features=resident is not None,
    )
    return dict(figures=figures, raw=dict(train_step_s=steps, infer_b1_s=latencies, infer_big_s=throughput))


def run_worker(arguments: list[str], timeout: float, marker: str = "RESULT ") -> dict:
    """A measuring process; its last ``marker`` line as JSON, or ``{"error": ...}`` (a failed or slow variant does not
    stop the benchmark: its error is part of the results)."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith(marker)]
    if done.returncode or not lines:
        return {"error": f"exit {done.returncode}: {(done.stderr or done.stdout)[-1500:]}"}
    result = json.loads(lines[-1][len(marker):])
    result["process_s"] = time.perf_counter() - start
    return result


def official_arguments(args, layers: str, variant: str, size_name: str, repeats: dict) -> list[str]:
    bf16, compiled = VARIANTS[variant]
    size = SIZES[size_name]
    command = [str(args.official_driver), "--src", str(args.official_src), "--device", args.device, "--layers", layers,
               "--bsz", str(size["batch"]), "--infer-bsz", str(size["infer_batch"]), "--warmup", str(repeats["warmup"]),
               "--train-steps", str(repeats["train"]), "--latency-iters", str(repeats["infer_b1"]),
               "--throughput-iters", str(repeats["infer_big"])]
    return command + (["--bf16"] if bf16 else []) + (["--compile"] if compiled else [])


def device_description(device: str) -> dict:
    import torch
    import transformers

    described = dict(device=device, torch=torch.__version__, transformers=transformers.__version__,
                     python=platform.python_version(), cpus=os.cpu_count(), load_average=list(os.getloadavg()))
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        described.update(name=properties.name, memory_gib=round(properties.total_memory / 2**30, 1),
                         cuda=torch.version.cuda, capability=list(torch.cuda.get_device_capability(0)))
        try:
            described["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                                 capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            described["driver"] = "unknown (nvidia-smi not found)"
    return described


def ratios(results: dict) -> list[dict]:
    listed = []
    for name, numerator, denominator in RATIOS:
        for variant in VARIANTS:
            values = []
            for path in (numerator.format(v=variant), denominator.format(v=variant)):
                key, measured, figure = path.split(".")
                values.append(results["measurements"].get(key, {}).get(measured, {}).get("figures", {}).get(figure))
            if all(isinstance(value, (int, float)) and value > 0 for value in values):
                listed.append(dict(name=f"{name} ({variant})", value=values[0] / values[1],
                                   numerator=numerator.format(v=variant), denominator=denominator.format(v=variant)))
    return listed


def plan(args) -> list[tuple[str, str, str]]:
    """Tasks in priority order, ``(kind, key, variant)``: TD-DETR beside the official 2/2 model at fp32, compiled and
    at bf16 (eager steps are launch-bound on a GPU, so compilation is the first thing to know), the run cost at fp32,
    the other models, bf16 compiled, the bf16 run cost; ``--budget-s`` cuts the tail."""
    ours = [key for key in args.configs if key in OURS]
    official = [key for key in args.configs if key in OFFICIAL] if args.official_src else []
    heads = ours[:1] + official[:1]
    measures = [(key, variant) for variant in ("fp32", "compile", "bf16") for key in heads]
    later = [(key, "fp32") for key in ours[1:] + official[1:]] + [(key, "bf16") for key in ours[1:]]
    later += [("td_detr", "rows")] if "td_detr" in ours else []
    later += [(key, "bf16_compile") for key in heads]
    costs = [(side, variant) for variant in ("fp32", "bf16") for side in ["ours"] + official[:1]] if args.run_cost else []
    wanted = lambda variant: variant in args.variants  # noqa: E731
    tasks = [("measure", key, variant) for key, variant in measures if wanted(variant)]
    tasks += [("run_cost", side, variant) for side, variant in costs[: len(costs) // 2]]
    tasks += [("measure", key, variant) for key, variant in later if wanted(variant)]
    tasks += [("run_cost", side, variant) for side, variant in costs[len(costs) // 2:] if wanted(variant)]
    return tasks


def run_task(args, task, size_name: str, repeats: dict, timeout: float) -> dict:
    kind, key, variant = task
    mode = "quick" if args.quick else "full"
    if kind == "measure" and key in OFFICIAL:
        return run_worker(official_arguments(args, OFFICIAL[key], variant, size_name, repeats), timeout)
    if kind == "run_cost" and key in OFFICIAL:
        cost = run_cost_settings(args, mode)
        size = SIZES[size_name]
        command = official_arguments(args, OFFICIAL[key], variant, size_name, repeats) + [
            "--mode", "run-cost", "--steps", str(cost["steps"]), "--val-queries", str(cost["val_queries"]),
            # the official TD-DETR epoch walks 2N entries (N synthetic + N original): 2N items give its epoch length
            "--train-queries", str(2 * cost["train_queries"]), "--feature-pool", str(min(256, cost["train_queries"])),
            "--clips", str(max(size["clips"], 75))]
        return run_worker(command + (["--workers", "0"] if args.quick else []), timeout)
    worker = [str(Path(__file__).resolve()), "--device", args.device, "--worker", f"{kind}:{key}:{variant}"]
    if args.quick:
        try:  # in this process: the smoke run's point is the code path, not isolation
            return dict(worker_result(args.device, kind, key, variant, "quick", run_cost_settings(args, "quick")),
                        process_s=None)
        except Exception as error:  # noqa: BLE001  (recorded like a failed worker process)
            return {"error": f"{type(error).__name__}: {error}"}
    steps = ["--run-cost-steps", str(args.run_cost_steps)] if args.run_cost_steps else []
    return run_worker(worker + ["--worker-mode", mode] + steps, timeout)


def run_cost_settings(args, mode: str) -> dict:
    """The run-cost size of ``mode``, with ``--run-cost-steps`` when given."""
    return dict(RUN_COST[mode], **({"steps": args.run_cost_steps} if args.run_cost_steps else {}))


def worker_result(device: str, kind: str, key: str, variant: str, mode: str, cost: dict) -> dict:
    size = SIZES["tiny" if mode == "quick" else "real"]
    if kind == "measure":
        return measure_ours(key, variant, size, REPEATS[mode], device)
    from benchmark_configs import build_config
    from run_cost import our_run_cost

    bf16, compiled = VARIANTS[variant]
    return our_run_cost(build_config("td_detr", size, "torch"), size, device, bf16=bf16, compile=compiled,
                        **cost)


def summarise_run_costs(results: dict) -> None:
    """Minutes of the whole QVHighlights schedule for each timed run-cost task, and ours / official."""
    from run_cost import extrapolate, planned_schedule

    schedule = planned_schedule(RUN_COST["full"]["train_queries"])
    results["run_cost_schedule"] = schedule
    for name, result in results["run_costs"].items():
        if "error" not in result and result.get("first_step_s") is not None:
            result["extrapolated"] = extrapolate(result, schedule)
    for variant in ("fp32", "bf16"):
        ours, official = (results["run_costs"].get(f"{side}.{variant}", {}).get("extrapolated")
                          for side in ("ours", "official_2l"))
        if ours and official:
            results["ratios"].append(dict(name=f"QVHighlights run minutes: ours / official 2/2 ({variant})",
                                          value=ours["run_minutes"] / official["run_minutes"],
                                          numerator=f"run_costs.ours.{variant}", denominator=f"run_costs.official_2l.{variant}"))


def print_report(results: dict) -> None:
    device = results["device"]
    print(f"{device.get('name', device['device'])}, driver {device.get('driver', '-')}, torch {device['torch']}, "
          f"CUDA {device.get('cuda', '-')}; {device['cpus']} CPUs, load {device['load_average'][0]:.2f}")
    print(f"{'config.variant':28s} {'step ms':>8s} {'rows/s':>8s} {'orig/s':>8s} {'b1 ms':>7s} {'b256/s':>8s} "
          f"{'train MB':>9s} {'first s':>8s}")
    for key, variants in results["measurements"].items():
        for variant, result in variants.items():
            if "error" in result:
                print(f"{key + '.' + variant:28s} {result['error'].splitlines()[-1][:90]}")
                continue
            f = result["figures"]
            print(f"{key + '.' + variant:28s} {1000 * f['train_step_s']:8.2f} {f['train_samples_per_s']:8.1f} "
                  f"{f['original_samples_per_s']:8.1f} {f['infer_b1_ms']:7.2f} {f['infer_big_samples_per_s']:8.1f} "
                  f"{f['peak_training_mb']:9.0f} {f['first_train_step_s']:8.1f}")
    for name, result in results["run_costs"].items():
        if "extrapolated" in result:
            e = result["extrapolated"]
            print(f"run cost {name}: {result['steps']} steps + {result['evaluations']} evaluations in "
                  f"{result['total_s']:.1f} s -> QVHighlights run {e['run_minutes']:.1f} min "
                  f"({e['train_step_s'] * 1000:.1f} ms/step, {e['evaluation_s']:.1f} s/evaluation)")
        else:
            print(f"run cost {name}: {result.get('error', 'no first step')[-200:]}")
    for skipped in results["skipped"]:
        print(f"skipped (time budget): {skipped}")
    if results["settings"]["mode"] == "quick":
        print("quick: our models at tiny sizes against the official code at full size, extrapolated from a few steps: "
              "the figures and ratios below check the code path, they compare nothing")
    for ratio in results["ratios"]:
        print(f"  {ratio['name']:72s} {ratio['value']:7.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), required=True)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1-2 repeats, in this process (smoke run)")
    parser.add_argument("--configs", type=lambda s: s.split(","), default=list(OURS) + list(OFFICIAL),
                        help=f"comma list from {','.join(OURS + tuple(OFFICIAL))} (official ones need --official-src)")
    parser.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS) + ["rows"],
                        help=f"comma list from {','.join(VARIANTS)},rows")
    parser.add_argument("--official-src", type=Path, help="folder holding the official qd_detr/ and utils/")
    parser.add_argument("--official-driver", type=Path, default=SCRIPTS / "official_qd_detr_gpu.py",
                        help=argparse.SUPPRESS)
    parser.add_argument("--run-cost", action="store_true", help="also time ~2,000 QVHighlights-scale steps and extrapolate")
    parser.add_argument("--run-cost-steps", type=int, default=None,
                        help="training steps a run-cost task times (default 2,000; a QVHighlights epoch is 452)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no task after this many seconds (later tasks are listed as skipped)")
    parser.add_argument("--task-timeout-s", type=float, default=120, help="a measuring process's limit")
    parser.add_argument("--run-cost-timeout-s", type=float, default=240, help="a run-cost process's limit")
    parser.add_argument("--json", type=Path, help="write every figure here (rewritten after each task)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-mode", choices=list(REPEATS), default="full", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    if args.device == "cpu":  # tiny matrices on a shared CPU: more threads only wait for each other
        torch.set_num_threads(1)
    if args.worker:
        kind, key, variant = args.worker.split(":")
        cost = run_cost_settings(args, args.worker_mode)
        print("RESULT " + json.dumps(worker_result(args.device, kind, key, variant, args.worker_mode, cost)), flush=True)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU")
    unknown = sorted(set(args.configs) - set(OURS) - set(OFFICIAL)) + sorted(set(args.variants) - set(VARIANTS) - {"rows"})
    if unknown:
        parser.error(f"unknown configs / variants: {', '.join(unknown)}")
    if args.official_src is not None and not (args.official_src / "qd_detr" / "model.py").is_file():
        parser.error(f"--official-src {args.official_src}: no qd_detr/model.py there")
    size_name, mode = ("tiny", "quick") if args.quick else ("real", "full")
    results = dict(device=device_description(args.device), settings=dict(mode=mode, size=SIZES[size_name],
                   repeats=REPEATS[mode], run_cost=run_cost_settings(args, mode) if args.run_cost else None,
                   official_src=str(args.official_src or "")), measurements={}, run_costs={}, skipped=[], ratios=[])
    start = time.perf_counter()
    for task in plan(args):
        elapsed = time.perf_counter() - start
        name = ".".join(task[1:])
        if args.budget_s is not None and elapsed > args.budget_s:
            results["skipped"].append(f"{task[0]} {name}")
            continue
        timeout = args.run_cost_timeout_s if task[0] == "run_cost" else args.task_timeout_s
        if args.budget_s is not None:  # a task started within the budget ends by 60 s after it
            timeout = min(timeout, args.budget_s + 60 - elapsed)
        result = run_task(args, task, size_name, REPEATS[mode], timeout)
        print(f"[{time.perf_counter() - start:6.1f} s] {task[0]} {name}: "
              + ("ok" if "error" not in result else result["error"].splitlines()[-1][:200]), flush=True)
        if task[0] == "measure":
            results["measurements"].setdefault(task[1], {})[task[2]] = result
        else:
            results["run_costs"][name] = result
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    results["ratios"] = ratios(results)
    if args.run_cost:
        summarise_run_costs(results)
    results["device"]["load_average_after"] = list(os.getloadavg())
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
