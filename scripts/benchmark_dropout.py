"""Training step with td_detr's cheap-mask dropout vs torch's own dropout, in one process, alternating.

The QD-DETR baseline (2/2/2) or TD-DETR (4/4/4, no synthesis) at QVHighlights sizes (batch 32, 75 clips, 2816-d video +
TEF, 32 tokens), AdamW, grad-norm clip: the only difference between the two arms is `TDDetrConfig.dropout_implementation`
(`fast_cpu`: `td_detr.dropout`, vs `torch`: `nn.Dropout` and SDPA's own attention dropout), switched with
`model.set_dropout_implementation`. Rounds alternate so that a
shared machine's load hits both arms alike; the medians and their ratio are printed.

    python scripts/benchmark_dropout.py                 # QD-DETR 2/2/2, 6 rounds x 2 steps per arm
    python scripts/benchmark_dropout.py --config td_detr --rounds 4
    python scripts/benchmark_dropout.py --dry-run       # ~45 s on 2 shared cores: tiny sizes
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=["qd_detr_2l", "td_detr_no_synthesis"], default="qd_detr_2l")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per arm per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)

    import torch
    from benchmark_configs import SIZES, build_config, size_rows

    from td_detr import TDDetrForMomentRetrieval
    from td_detr.data.collator import DataCollatorForMomentRetrieval

    torch.set_num_threads(args.threads)
    size = SIZES["tiny" if args.dry_run else "real"]
    config = build_config(args.config, size)
    rows = size_rows(size)
    torch.manual_seed(0)
    model = TDDetrForMomentRetrieval(config).train()
    batch = DataCollatorForMomentRetrieval.from_config(config, training=True)(rows)
    batch.pop("meta")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)

    def step():
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()

    arms = {"td_detr dropout": "fast_cpu", "torch dropout": "torch"}
    times = {name: [] for name in arms}
    rounds = 1 if args.dry_run else args.rounds
    for _ in range(rounds):
        for name, implementation in arms.items():
            model.set_dropout_implementation(implementation)
            step()  # warm-up for this arm
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.config}: dropout {config.dropout}, input dropout {config.input_dropout}; {args.threads} threads; "
          f"{rounds} rounds x {args.steps} steps per arm")
    for name, value in medians.items():  # 4 significant digits: a dry run's steps take milliseconds
        print(f"  {name:16s} train step median {value:.4g} s  (min {min(times[name]):.4g}, max {max(times[name]):.4g})")
    print(f"  ratio torch / td_detr dropout: {medians['torch dropout'] / medians['td_detr dropout']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
