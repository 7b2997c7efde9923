"""Where one TD-DETR training step goes, phase by phase: the operations it dispatches (each a kernel launch on a GPU,
where a step of this small model is launch-bound) and, synchronized, the time of each phase.

The step is the GPU benchmark's (``scripts/benchmark_gpu.py``): the training collator with the synthesizer on resident
features, forward + loss, backward, clip 0.1 + AdamW, at QVHighlights shapes (batch 32: 64 rows with the synthesized
ones; 75 clips x 2,816, text 32 x 512) or, ``--size tiny``, the benchmark's tiny model on the same batch shapes (the
operation count depends on the layers and rows, not on the widths). On CUDA it also counts the kernel launches and
synchronizing copies per step (``torch.profiler``) and prints the profiler's table.

    python scripts/step_profile.py --device cpu --size tiny         # operation counts here, in seconds
    python scripts/step_profile.py --device cuda                    # on a GPU (scripts/gpu_session.sh runs it)
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PHASES = ("collate", "forward+loss", "backward", "clip+adamw")


def build(device: str, size_name: str):
    import torch
    from benchmark_configs import build_config, size_rows
    from benchmark_gpu import SIZES

    from td_detr import TDDetrForMomentRetrieval
    from td_detr.data.collator import DataCollatorForMomentRetrieval
    from td_detr.data.resident import ResidentVideoFeatures

    size = dict(SIZES["real"], model=SIZES[size_name]["model"])
    if size_name == "tiny":  # narrow features: the counts, not the arithmetic, are the point
        size.update(video_dims=(24, 8), text_dim=16)
    config = build_config("td_detr", size, "torch")
    rows = size_rows(size, seed=0, batch=4 * size["batch"])
    torch.manual_seed(0)
    model = TDDetrForMomentRetrieval(config).to(device).train()
    resident = ResidentVideoFeatures.from_arrays({row["vid"]: row["video_features"].numpy() for row in rows}, device)
    rows = [{key: value for key, value in row.items() if key != "video_features"} for row in rows]
    collator = DataCollatorForMomentRetrieval.from_config(config, training=True, resident=resident)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, fused=device == "cuda")
    batches = [rows[k * size["batch"] : (k + 1) * size["batch"]] for k in range(4)]
    return model, collator, optimizer, batches


def phase_calls(model, collator, optimizer, rows, device: str):
    """The step as four callables run in order (the labels stay on the host, as TDDetrTrainer leaves them)."""
    import torch
    from benchmark_gpu import to_device

    state = {}

    def collate():
        batch = collator(rows)
        batch.pop("meta")
        labels = batch.pop("labels")
        state["batch"] = dict(to_device(batch, device), labels=labels)

    def forward():
        state["loss"] = model(**state["batch"]).loss

    def backward():
        optimizer.zero_grad(set_to_none=True)
        state["loss"].backward()

    def update():
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()

    return dict(zip(PHASES, (collate, forward, backward, update)))


def count_operations(calls) -> dict[str, int]:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count += 1
            return func(*args, **(kwargs or {}))

    counts = {}
    for name, call in calls.items():
        with Count() as counter:
            call()
        counts[name] = counter.count
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), required=True)
    parser.add_argument("--size", choices=("real", "tiny"), default="real")
    parser.add_argument("--steps", type=int, default=10, help="timed steps after 3 warm-up steps (default 10)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU")
    if args.device == "cpu":
        torch.set_num_threads(1)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    model, collator, optimizer, batches = build(args.device, args.size)
    times = collections.defaultdict(list)
    for step in range(3 + args.steps):
        for name, call in phase_calls(model, collator, optimizer, batches[step % 4], args.device).items():
            sync()
            start = time.perf_counter()
            call()
            sync()
            if step >= 3:
                times[name].append(time.perf_counter() - start)
    operations = count_operations(phase_calls(model, collator, optimizer, batches[0], args.device))
    figures = {name: dict(ms=1000 * statistics.median(times[name]), operations=operations[name]) for name in PHASES}
    result = dict(device=args.device, size=args.size, phases=figures,
                  step_ms=sum(phase["ms"] for phase in figures.values()),
                  operations=sum(phase["operations"] for phase in figures.values()))
    if args.device == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
            for call in phase_calls(model, collator, optimizer, batches[1], args.device).values():
                call()
            sync()
        events = profiler.key_averages()
        result["kernel_launches"] = sum(event.count for event in events if "LaunchKernel" in event.key)
        result["synchronizing_calls"] = sum(event.count for event in events
                                            if "Synchronize" in event.key or event.key == "cudaMemcpyAsync")
        print(events.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
    print(f"{'phase':14s} {'ms':>9s} {'operations':>11s}   ({args.device}, size {args.size}, median of {args.steps})")
    for name, phase in figures.items():
        print(f"{name:14s} {phase['ms']:9.2f} {phase['operations']:11d}")
    print(f"{'step':14s} {result['step_ms']:9.2f} {result['operations']:11d}"
          + (f"   kernel launches {result['kernel_launches']}, synchronizing calls {result['synchronizing_calls']}"
             if "kernel_launches" in result else ""))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
