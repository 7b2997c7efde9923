"""One CPU benchmark of TD-DETR: training, inference, scoring and memory, each next to a reference from the same run.

Measured for the default QVHighlights-sized model (``TDDetrConfig()``: 2816-d video + TEF, 512-d text, 4/4/4 layers)
and three references, each in a fresh process (so its peak RSS is its own):

* ``td_detr``               TD-DETR as configured by default (dynamics on, video synthesis on)
* ``td_detr_no_synthesis``  the same model trained without the synthesizer
* ``qd_detr_2l``            ``TDDetrConfig.qd_detr_baseline()``: QD-DETR as released (2/2/2, no dynamics, no synthesis)
* ``qd_detr_4l``            the QD-DETR architecture at TD-DETR's depth (4/4/4)
* ``td_detr_checkpointing`` TD-DETR with activation checkpointing
* ``td_detr_row_chunks``    TD-DETR with the step's forward / backward in chunks of 16 rows (``td_detr.row_chunks``)

Training step = collate (with synthesis where configured) + forward + loss + backward + grad-norm clip 0.1 + AdamW
step, on 32 rows of generated features (75 clips, 32 tokens). Synthesis grows the batch to 2x rows (~1.5x with
``synthesis_keep_originals``), so figures are given per sample the model sees and per original batch of 32. Inference = eval-mode forward (no negative pass,
no post-processing) on pre-collated batches of 1 and 32. Scoring = ``evaluate_submission`` on the 1550-query val
reference predictions (generated ones of the same shape when ../shared/data is absent) next to the naive
per-query loop of ``scripts/benchmark_metrics.py``. Every figure is the median of the repeats, warm-up excluded.

With ``--official-src`` (the official QD-DETR code, ``../shared/reference/qd-detr``) the official model is measured in
the same run, 2/2/2 and 4/4/4, each in its own process, alternating with ours round by round, by the driver beside it
(``qd_detr_speed.py``: official options, label functions and collate, the official train loop's step), and the report
gives ours / official ratios from that run. ``--compile`` also measures every config of ours under ``torch.compile``
(compile time reported apart from the step). ``--bf16`` also measures every config of ours and both official models
with the forward under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (the official criterion on fp32 outputs, as
ours), alternating with the fp32 ones. Our configs use ``--dropout-implementation`` (default ``fast_cpu``).

    # the issue-15 runs (docs/PERFORMANCE.md): ~22 min each on the shared 2-vCPU machine at load 5-8
    python scripts/benchmark.py --threads 1 --clock cpu --bf16 --official-src ../shared/reference/qd-detr \
        --configs td_detr,td_detr_row_chunks,qd_detr_2l,qd_detr_4l --json docs/benchmarks/run1.json

    python scripts/benchmark.py --rounds 2 --official-src ../shared/reference/qd-detr   # ours beside the official code
    python scripts/benchmark.py                     # full: not timed alone (the issue-15 runs above took 14-22 min)
    python scripts/benchmark.py --quick             # 54 s on the idle 2-core machine (load 1.4), longer when cores are shared
    python scripts/benchmark.py --dry-run --json o.json   # ~25 s on 2 shared cores: tiny sizes, 1 repeat, one process
    python scripts/benchmark.py --rounds 2 --json o.json  # on a shared machine: each config twice, fastest kept
    python scripts/benchmark.py --device cuda ...    # the GPU harness, scripts/benchmark_gpu.py (its docstring)

This file runs the configs and holds the command line; beside it: ``benchmark_configs.py`` (configs, sizes, repeats),
``benchmark_measure.py`` (clock, one config in this or a fresh process, scoring), ``benchmark_official.py`` (the
official driver's process) and ``benchmark_report.py`` (ratios, machine, printed report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmark_configs import BF16, COMPILED, CONFIGS, OFFICIAL, REPEATS, SIZES
from benchmark_measure import CLOCKS, clock_name, measure_config, measure_in_fresh_process, measure_scoring, use_clock
from benchmark_official import measure_official
from benchmark_report import contention_warnings, machine_description, print_report, run_ratios


def run_benchmark(mode: str, threads: int, in_process: bool, rounds: int = 1, official_src: Path | None = None,
                  official_driver: Path | None = None, compile_too: bool = False,
                  dropout_implementation: str = "fast_cpu", configs: list[str] | None = None,
                  bf16: bool = False) -> dict:
    """Every figure and ratio of one benchmark run (see the module docstring), as a JSON-ready dict."""
    import torch

    torch.set_num_threads(threads)
    size_name = "tiny" if mode == "dry" else "real"
    size, repeats = SIZES[size_name], REPEATS[mode]
    results = dict(
        machine=machine_description(threads),
        settings=dict(mode=mode, batch=size["batch"], clips=size["clips"], tokens=size["tokens"],
                      video_dim=sum(size["video_dims"]), text_dim=size["text_dim"], repeats=repeats, rounds=rounds,
                      memory="fresh process per config" if not in_process else "one process (peaks cumulative)",
                      dropout_implementation=dropout_implementation, official_src=str(official_src or ""), bf16=bf16,
                      clock=clock_name()),
        load_average_before=list(os.getloadavg()),
        configs={},
    )
    selected = list(configs or CONFIGS)
    ours = selected + ([key + COMPILED for key in selected] if compile_too else [])
    ours += [key + BF16 for key in selected] if bf16 else []
    officials = (list(OFFICIAL) + ([key + BF16 for key in OFFICIAL] if bf16 else [])) if official_src else []
    measured = {key: [] for key in ours + officials}
    for _ in range(rounds):  # configs alternate, so a burst of outside load hits one round of one config
        for key in measured:
            if key.removesuffix(BF16) in OFFICIAL:
                result = measure_official(key, official_src, official_driver, size, repeats, threads)
            elif in_process:
                result = measure_config(key, size, repeats, threads, dropout_implementation)
            else:
                result = measure_in_fresh_process(key, mode, size_name, threads, dropout_implementation)
            measured[key].append(result)
    for key, runs in measured.items():
        # Other work on the machine only ever slows a round down: keep each config's fastest round whole.
        chosen = min(range(rounds), key=lambda i: runs[i]["figures"]["train_step_s"])
        results["configs"][key] = runs[chosen]
        runs[chosen]["conditions"].update(
            chosen_round=chosen, round_train_step_s=[run["figures"]["train_step_s"] for run in runs],
            round_infer_b1_ms=[run["figures"]["infer_b1_ms"] for run in runs],
        )
    results["scoring"] = measure_scoring(size, repeats, dry_run=mode == "dry")
    results["load_average_after"] = list(os.getloadavg())
    results["ratios"] = run_ratios(results, official=bool(officials), bf16=bf16,
                                   compiled=selected if compile_too else [])
    results["warnings"] = contention_warnings(results)
    return results


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(arg == "--device" or arg.startswith("--device=") for arg in argv):  # GPU harness: scripts/benchmark_gpu.py
        import benchmark_gpu

        return benchmark_gpu.main(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default 2; 1 for --dry-run, whose tiny matrices "
                             "only pay thread hand-off on a busy machine)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats, all configs in this process (54 s measured on an idle 2-core machine, several times "
                             "that when the cores are shared; peak RSS then cumulative)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, 1 repeat, one process (~25 s on 2 shared cores)")
    parser.add_argument("--fresh-processes", action="store_true",
                        help="with --quick: still measure every config in its own process (peak RSS per config)")
    parser.add_argument("--in-process", action="store_true",
                        help="measure every config in this process (faster start; peak RSS then cumulative)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every config this many times, alternating, and keep each one's fastest round "
                             "(a shared machine's load only slows rounds down)")
    parser.add_argument("--official-src", type=Path,
                        help="folder holding the official QD-DETR qd_detr/ and utils/ (../shared/reference/qd-detr): "
                             "also measure the official 2/2/2 and 4/4/4 models in this run and give ours / official")
    parser.add_argument("--official-driver", type=Path,
                        help="the script that times the official code (default: qd_detr_speed.py beside --official-src)")
    parser.add_argument("--compile", action="store_true",
                        help="also measure every config of ours under torch.compile (compile time reported apart)")
    parser.add_argument("--dropout-implementation", choices=("torch", "fast_cpu"), default="fast_cpu",
                        help="TDDetrConfig.dropout_implementation of our configs (default fast_cpu)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="time in wall seconds (default) or in CPU seconds of the measuring process (ours and the "
                             "official code's alike; steadier on a shared machine, meaningful with --threads 1)")
    parser.add_argument("--configs", type=lambda text: text.split(","), default=None,
                        help=f"comma list of our configs to measure (default all: {','.join(CONFIGS)})")
    parser.add_argument("--bf16", action="store_true",
                        help="also measure every config of ours, and the official models with --official-src, with "
                             "the forward under torch.autocast('cpu', bfloat16) (fast on CPUs with AVX-512 BF16 / AMX)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--worker", choices=[key + suffix for key in CONFIGS for suffix in ("", COMPILED, BF16)],
                        help=argparse.SUPPRESS)
    parser.add_argument("--worker-mode", choices=list(REPEATS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-size", choices=list(SIZES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    use_clock(args.clock)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    unknown = sorted(set(args.configs or []) - set(CONFIGS))
    if unknown:
        parser.error(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")

    if args.worker:  # child of measure_in_fresh_process: one config, result as the last stdout line
        result = measure_config(args.worker, SIZES[args.worker_size], REPEATS[args.worker_mode], args.threads or 2,
                                args.dropout_implementation)
        print(json.dumps(result))
        return 0

    mode = "dry" if args.dry_run else "quick" if args.quick else "full"
    threads = args.threads or (1 if args.dry_run else 2)
    # --quick measures in one process (no interpreter start per config); peak RSS then cumulative.
    in_process = args.in_process or args.dry_run or (args.quick and not args.fresh_processes)
    driver = args.official_driver
    if args.official_src is not None:
        driver = driver or args.official_src.resolve().parent / "qd_detr_speed.py"
        missing = [str(p) for p in (args.official_src / "qd_detr" / "model.py", driver) if not p.is_file()]
        if missing:
            parser.error(f"--official-src / --official-driver: not found: {', '.join(missing)}")
    results = run_benchmark(mode, threads, in_process=in_process, rounds=args.rounds, official_src=args.official_src,
                            official_driver=driver, compile_too=args.compile,
                            dropout_implementation=args.dropout_implementation, configs=args.configs, bf16=args.bf16)
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
