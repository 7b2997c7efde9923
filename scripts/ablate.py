"""Ablations of TD-DETR on a spurious synthetic data set (paper Table 3, Tables S1 / S2 / S4, the "w/ TD-DETR"
rows), several seeds each, mean ± std: the runner and its command line.

What is trained (data, settings, plans, each run's ``td-detr`` commands and fingerprint) is ``ablation_plan.py``;
the tables and claims of the summary are ``ablation_tables.py`` (bootstrap intervals: ``ablation_statistics.py``).

Each run is one worker process running the ``td-detr`` commands (``OMP_NUM_THREADS`` = ``--threads``; ``--jobs``
at a time) that writes ``RESULTS/runs/<setting>__seed<S>.json`` atomically when it is done; its predictions on
``validation`` and ``validation_iid`` are kept in ``RESULTS/predictions``. A rerun skips finished runs (same
fingerprint) and restarts an interrupted one from scratch (its work folder is wiped). A run's record holds the iid,
shifted, Spurious and dynamic-context metrics (``ablation_tables.py``), the per-query AP of the iid, shifted and
Spurious splits (``per_query_ap``: 100 × their mean is the split's mAP), the optimizer steps, samples (rows,
synthesized ones included) seen, best epoch, epochs and steps run (``convergence``) and the wall-clock seconds of
each command.

``results.json`` (the runs of the invocation), ``summary.json`` and ``summary.md`` are rewritten at the end;
``--summarize-only`` rewrites them from every run record in ``RESULTS/runs`` (so seeds, settings or a longer cap
added by later invocations join the tables; the run-length table gives each run's cap).

    python scripts/ablate.py --jobs 2 --threads 1 --only baseline,baseline_equal_samples,full  # main comparison
    python scripts/ablate.py --jobs 2 --threads 1   # the whole study: 5 seeds x 20 settings, until converged
    python scripts/ablate.py --plan study_long --jobs 2 --threads 1 --results-dir runs/ablation_long   # the next plan
    python scripts/ablate.py --plan study_320 --jobs 2 --threads 1   # its first pass, 320 training queries
    python scripts/ablate.py --plan earlier --jobs 2 --threads 1   # the earlier study: 3 seeds x 15, 12 epochs
    python scripts/ablate.py --quick --jobs 2 --threads 1   # 1 seed x 4 epochs
    python scripts/ablate.py --dry-run --results-dir /tmp/abl   # tiny data / model, 2 steps per run
    python scripts/ablate.py --summarize-only --results-dir runs/ablation   # the tables and claims again
    python scripts/ablate.py --device cuda --jobs 15 --threads 1 ...   # on a GPU (scripts/gpu_study.sh)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from ablation_plan import PLANS, SETTINGS, Plan, architecture_config, run_name, run_spec
from ablation_tables import MAIN_KEYS, SPURIOUS_KEYS, resummarize, text_table, write_json_atomic, write_summary
from td_detr.convergence import convergence_report
from td_detr.devices import DEVICES, pick_device
from td_detr.errors import TDDetrInputError
from td_detr.registry import DATA_SETS

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------------------------
# One run: the td-detr commands in worker processes, the run record
# ------------------------------------------------------------------------------------------------------------------


def command_line(argv: list[str]) -> str:
    return "td-detr " + " ".join(argv)


def thread_environment(threads: int, device: str = "cpu") -> dict:
    """The environment of a run's processes: `threads` threads; a CPU run sees no GPU (its commands carry no
    --device, so `td-detr train`'s default, auto, would pick one on a GPU machine)."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false", **({"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {})}


def run_device(spec: dict) -> str:
    return spec.get("device", "cpu")  # only a non-CPU device is in the spec (ablation_plan.run_spec)


def execute_run(spec: dict, threads: int) -> dict:
    """Train, evaluate on the shifted split and run the spurious evaluation (each a `td-detr` command in its own
    process, as a user runs them); returns the result."""
    work = Path(spec["work_dir"])
    if work.exists():  # a killed run left a partial folder: start it over cleanly
        shutil.rmtree(work)
    work.mkdir(parents=True)
    timings, start = {}, time.perf_counter()
    for name, argv in zip(("train", "evaluate", "spurious_eval"), spec["commands"]):
        began = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "td_detr", *argv],
                              env=thread_environment(threads, run_device(spec))).returncode
        if code != 0:
            raise RuntimeError(f"{command_line(argv)} exited with {code}")
        timings[name] = round(time.perf_counter() - began, 2)
    model_dir = work / "model"
    spurious = json.loads((work / "spurious" / "spurious_metrics.json").read_text())
    shifted = json.loads((work / "shifted" / "metrics.json").read_text())["brief"]
    trainer_state = _trainer_state(model_dir / "checkpoints")
    data = Path(spec["data_dir"])
    trained = trained_synthesizer(model_dir)
    if trained.rows_per_batch(spec["batch_size"]) != spec["rows_per_batch"]:  # the equal-samples budget assumed it
        raise RuntimeError(f"{work.name}: the trained config makes {trained.rows_per_batch(spec['batch_size'])} rows a "
                           f"step, not the {spec['rows_per_batch']} the plan computed from the setting")
    result = {
        **{k: spec.get(k) for k in ("key", "label", "seed", "plan", "flags", "architecture", "size", "model", "epochs",
                                    "max_steps", "batch_size", "data_size", "data_preset", "until_converged",
                                    "samples_per_round", "rows_per_batch", "fingerprint")},
        "commands": [command_line(argv) for argv in spec["commands"]],
        "metrics": {
            "iid": _pick(spurious["standard"], MAIN_KEYS),
            "shifted": _pick(shifted, MAIN_KEYS),
            "spurious": _pick(spurious["masked"], SPURIOUS_KEYS),
            "dynamic_context": _pick(spurious["dynamic_context"], MAIN_KEYS),
        },
        # The AP of every query that each split's mAP averages (what the bootstrap of --summarize-only resamples).
        "per_query_ap": {
            "iid": per_query_ap(work / "spurious" / "predictions.jsonl", data / "validation_iid.jsonl"),
            "shifted": per_query_ap(work / "shifted" / "predictions.jsonl", data / "validation.jsonl"),
            "spurious": per_query_ap(work / "spurious" / "masked" / "predictions.jsonl", spurious["splits"]["masked"]),
        },
        "train_steps": trainer_state.get("global_step"),
        # Rows the optimizer steps trained on, synthesized ones included.
        "samples_seen": samples_seen(trainer_state.get("global_step") or 0,
                                     _count_lines(data / "train.jsonl") * DATA_SETS["synthetic"].training.passes_per_epoch,
                                     spec["batch_size"], trained.rows_per_batch),
        "best_checkpoint": Path(trainer_state.get("best_model_checkpoint") or "").name or None,
        # best_epoch / epochs_run count evaluation rounds' epochs; steps_run the optimizer steps actually taken.
        "convergence": convergence_report(trainer_state.get("log_history", []), "MR-full-mAP"),
        "seconds": {**timings, "total": round(time.perf_counter() - start, 2)},
        "threads": threads,
        "device": run_device(spec),
    }
    # Keep the prediction files (for plots), drop weights, checkpoints and derived feature splits.
    keep = Path(spec["result_file"]).parent.parent / "predictions"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "shifted" / "predictions.jsonl", keep / f"{run_name(spec['key'], spec['seed'])}__validation.jsonl")
    shutil.copyfile(model_dir / "predictions.jsonl", keep / f"{run_name(spec['key'], spec['seed'])}__validation_iid.jsonl")
    write_json_atomic(Path(spec["result_file"]), result)
    shutil.rmtree(work)
    return result


def _pick(brief: dict, keys) -> dict:
    return {key: float(brief[key]) for key in keys}


def per_query_ap(predictions: Path, annotations: Path) -> dict[str, float]:
    """qid -> AP averaged over the mAP IoU thresholds (the metrics module's function; mean × 100 = MR-full-mAP)."""
    from td_detr.metrics import per_query_average_precision, read_jsonl

    values = per_query_average_precision(read_jsonl(predictions), read_jsonl(annotations))
    return {str(qid): ap for qid, ap in values.items()}


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def trained_synthesizer(model_dir: Path):
    """The video synthesizer of the config a run saved."""
    from td_detr import TDDetrConfig
    from td_detr.data.synthesis import VideoSynthesizer

    return VideoSynthesizer.from_config(TDDetrConfig.from_pretrained(model_dir))


def samples_seen(steps: int, rows_per_epoch: int, batch_size: int, rows_of_batch) -> int:
    """Rows the first `steps` optimizer steps train on: each epoch is ceil(rows_per_epoch / batch_size) batches, the
    last one short; a batch of b rows becomes rows_of_batch(b) rows."""
    full, rest = divmod(rows_per_epoch, batch_size)
    epoch = [batch_size] * full + ([rest] if rest else [])
    epochs, left = divmod(steps, len(epoch))
    return epochs * sum(map(rows_of_batch, epoch)) + sum(map(rows_of_batch, epoch[:left]))


def _trainer_state(checkpoints: Path) -> dict:
    states = sorted(checkpoints.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]))
    return json.loads(states[-1].read_text()) if states else {}


def load_finished(spec: dict) -> dict | None:
    """The stored result of a run when it finished with the same settings, else None."""
    path = Path(spec["result_file"])
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("fingerprint") == spec["fingerprint"] else None


def side_files(spec: dict) -> tuple[Path, Path]:
    """(spec file, log file) of a subprocess run, beside its work folder."""
    work = Path(spec["work_dir"])
    # Not with_suffix: "alpha_0.5__seed0" would lose ".5__seed0" and collide with the other α runs.
    return work.with_name(work.name + ".spec.json"), work.with_name(work.name + ".log")


def run_in_subprocess(spec: dict, threads: int) -> dict:
    """One run in a fresh interpreter (nothing leaks between runs); its output goes to work/<run>.log."""
    spec_file, log = side_files(spec)
    write_json_atomic(spec_file, spec)
    with open(log, "w") as handle:
        code = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_file),
                               "--threads", str(threads)], stdout=handle, stderr=subprocess.STDOUT,
                              env=thread_environment(threads, run_device(spec))).returncode
    if code != 0:
        raise RuntimeError(f"run {Path(spec['work_dir']).name} failed (exit {code}); see {log}")
    spec_file.unlink()
    return json.loads(Path(spec["result_file"]).read_text())


# ------------------------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------------------------


def prepare(results_dir: Path, plan: Plan, keys: list[str]) -> None:
    """The spurious data set and the architecture configs of `keys` (feature sizes are filled in from the data)."""
    from td_detr import TDDetrConfig
    from td_detr.data.synthetic import ensure_synthetic_dataset

    ensure_synthetic_dataset(results_dir / "data", seed=0, size=plan.data_size, preset=plan.data_preset)
    for setting in {(SETTINGS[k].architecture, SETTINGS[k].size): SETTINGS[k] for k in keys}.values():
        path = results_dir / "configs" / f"{setting.architecture}_{setting.size}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        TDDetrConfig(**architecture_config(setting, plan)).to_json_file(str(path))


def selected_keys(only: str | None) -> list[str]:
    keys = list(SETTINGS)
    if only:
        keys = [k.strip() for k in only.split(",") if k.strip()]
        unknown = [k for k in keys if k not in SETTINGS]
        if unknown:
            raise SystemExit(f"ablate.py: unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    return keys


def wait_while_running(pattern: str | None, log=print, poll: float = 15.0) -> float:
    """Block while a process whose command line matches `pattern` (pgrep -f) runs: a CPU-timing-sensitive job
    sharing the machine gets it to itself, and our per-run timings stay clean. Returns the seconds waited."""
    if not pattern:
        return 0.0
    announced, start = False, time.perf_counter()
    while _matching_processes(pattern):
        if not announced:
            log(f"waiting while '{pattern}' runs ...")
            announced = True
        time.sleep(poll)
    return time.perf_counter() - start


def _matching_processes(pattern: str) -> set[int]:
    """PIDs matching `pattern` other than this process and its ancestors (whose command lines name the pattern)."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    ancestors, pid = set(), os.getpid()
    while pid > 1 and pid not in ancestors:
        ancestors.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return {int(p) for p in found} - ancestors


def run_ablation(results_dir: Path, plan: Plan, keys: list[str], threads: int, log=print,
                 pause_while: str | None = None, jobs: int = 1, device: str = "cpu") -> dict:
    """Run (or resume) every (setting, seed) of the plan on `device`, `jobs` runs at a time (each its own subprocess
    with `threads` threads); write results.json, summary.json, summary.md. Results do not depend on `jobs`."""
    start = time.perf_counter()
    results_dir.mkdir(parents=True, exist_ok=True)
    prepare(results_dir, plan, keys)
    # Seed-major: a run cut short leaves whole seeds done rather than whole settings missing.
    specs = [run_spec(SETTINGS[k], seed, plan, results_dir, device) for seed in plan.seeds for k in keys]
    by_name: dict[str, dict] = {}
    pending = []
    for index, spec in enumerate(specs, 1):
        name = run_name(spec["key"], spec["seed"])
        finished = load_finished(spec)
        if finished is not None:
            log(f"[{index}/{len(specs)}] {name}: done before, skipped")
            by_name[name] = finished
        else:
            pending.append((index, spec))
    waited = 0.0
    lock = threading.Lock()

    def run_one(index: int, spec: dict) -> None:
        nonlocal waited
        paused = wait_while_running(pause_while, log)
        began = time.perf_counter()
        # The dry run trains in this process unless runs go in parallel (each then needs its own interpreter).
        in_process = plan.in_process and jobs <= 1
        result = execute_run(spec, threads) if in_process else run_in_subprocess(spec, threads)
        m = result["metrics"]
        with lock:
            waited += paused
            by_name[run_name(spec["key"], spec["seed"])] = result
            log(f"[{index}/{len(specs)}] {run_name(spec['key'], spec['seed'])}: {time.perf_counter() - began:.0f}s"
                f"  iid mAP {m['iid']['MR-full-mAP']:.2f}  shifted mAP {m['shifted']['MR-full-mAP']:.2f}"
                f"  Spurious mAP {m['spurious']['Spurious-mAP']:.2f}")

    if jobs <= 1:
        for index, spec in pending:
            run_one(index, spec)
    else:  # a failed run stops new ones from starting; finished ones are already on disk
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, index, spec) for index, spec in pending]
            for future in concurrent.futures.as_completed(futures):
                if future.exception() is not None:
                    for other in futures:
                        other.cancel()
                    raise future.exception()
    ran = len(pending)
    results = [by_name[run_name(spec["key"], spec["seed"])] for spec in specs]
    meta = {
        "plan": dataclasses.asdict(plan),
        "data": {"preset": plan.data_preset, "seed": 0,
                 "split_sizes": json.loads((results_dir / "data" / "dataset_info.json").read_text())["split_sizes"]},
        "selection": "best epoch by MR-full-mAP on validation_iid"
                     + (" (until converged: no improvement for a fifth of the run)" if plan.until_converged else ""),
        "runs": len(results),
        "runs_executed_now": ran,
        "wall_seconds_this_invocation": round(time.perf_counter() - start, 1),
        "seconds_paused_for_other_jobs": round(waited, 1),
        "sum_of_run_seconds": round(sum(r["seconds"]["total"] for r in results), 1),
        "threads": threads,
        "parallel_runs": jobs,
        "device": device,
        "commands_example": results[0]["commands"] if results else [],
    }
    return write_summary(results_dir, results, meta)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 4 epochs")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny data and model, 2 steps, no worker process; wins over --quick (checks the whole pipeline)")
    parser.add_argument("--plan", choices=("study", "study_long", "study_320", "earlier"), default="study",
                        help="study: the spurious_hard preset at 1280 training queries, 5 seeds, until converged "
                             "(default); study_long: the same with the first LR drop at round 32, cap 120 and a "
                             "0.5-point improvement threshold (the next plan); study_320: its first pass at 320 "
                             "queries; earlier: the spurious preset, 3 seeds, 12 epochs (docs/RESULTS.md)")
    parser.add_argument("--results-dir", type=Path,
                        help="default: runs/ablation[-study_320|-earlier|-quick|-dry-run]")
    parser.add_argument("--only", help="comma-separated setting keys (default: all): " + ", ".join(SETTINGS))
    parser.add_argument("--seeds", help="comma-separated seeds (default: the plan's)")
    parser.add_argument("--epochs", type=float, help="training epochs per run (default: the plan's)")
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenMP threads per run (default 2)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time, each a subprocess with --threads threads (e.g. --jobs 2 --threads 1 "
                             "on 2 cores); results are the same for any value")
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="where every run trains and evaluates (default cpu; auto: CUDA when torch sees a GPU). "
                             "A CUDA run's fingerprint and record name the device, so it never stands in for a CPU "
                             "run; on CUDA training keeps its features on the GPU")
    parser.add_argument("--pause-while", metavar="PATTERN",
                        help="before each run, wait while a process matching PATTERN (pgrep -f) runs")
    parser.add_argument("--summarize-only", action="store_true",
                        help="rebuild results.json / summary.json / summary.md of --results-dir from the run records in "
                             "its runs/ folder; run nothing")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: run one spec file
    return parser.parse_args(argv)


def chosen_plan(args) -> Plan:
    """--dry-run shrinks whichever plan was asked for (so `--quick --dry-run` checks the quick run's pipeline)."""
    return PLANS["dry_run" if args.dry_run else "quick" if args.quick else args.plan]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        execute_run(json.loads(args.worker.read_text()), args.threads)
        return 0
    plan = chosen_plan(args)
    if args.seeds:
        plan = dataclasses.replace(plan, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.epochs:
        plan = dataclasses.replace(plan, epochs=args.epochs, max_steps=None)
    results_dir = args.results_dir or REPO / "runs" / {"study": "ablation", "study_320": "ablation-study_320",
                                                       "earlier": "ablation-earlier",
                                                       "quick": "ablation-quick", "dry_run": "ablation-dry-run"}[plan.name]
    if args.summarize_only:
        summary = resummarize(results_dir.absolute())
    else:
        try:
            device = pick_device(args.device)
        except TDDetrInputError as error:
            print(f"ablate.py: {error}", file=sys.stderr)
            return 2
        summary = run_ablation(results_dir.absolute(), plan, selected_keys(args.only), args.threads,
                               pause_while=args.pause_while, jobs=args.jobs, device=device)
    print()
    print(text_table(summary))
    print(f"\nwrote {results_dir / 'results.json'}, {results_dir / 'summary.json'} and {results_dir / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
