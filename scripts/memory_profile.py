"""Where a training step's memory goes: the tensors autograd keeps for the backward, by part of the model.

One forward of a training batch (collated with synthesis where the config has it) under a `saved_tensors_hooks`
probe: every tensor saved for the backward is counted once per storage and charged to the outermost model part
running when it was saved (input projections, T2V layers, encoder, decoder, heads and loss). Then the backward, and
the process's peak RSS. Configs as `scripts/benchmark.py` (real sizes: batch 32 × 75 clips × 2818-d video).

    python scripts/memory_profile.py td_detr qd_detr_4l             # fp32
    python scripts/memory_profile.py td_detr --bf16 --rows 16       # bf16 autocast, the first 16 rows (one chunk)
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys

PARTS = ("video_projection", "text_projection", "t2v_layers", "encoder_layers", "decoder")


def profile(key: str, bf16: bool, rows: int | None, threads: int) -> dict:
    import torch
    from benchmark_configs import SIZES, build_config, size_rows

    from td_detr import TDDetrForMomentRetrieval
    from td_detr.data.collator import DataCollatorForMomentRetrieval
    from td_detr.row_chunks import chunk_inputs

    torch.set_num_threads(threads)
    size = SIZES["real"]
    config = build_config(key, size, "fast_cpu")
    data = size_rows(size)
    torch.manual_seed(0)
    model = TDDetrForMomentRetrieval(config).train()
    batch = DataCollatorForMomentRetrieval.from_config(config, training=True)(data)
    batch.pop("meta")
    seen = batch["video_features"].shape[0]
    if rows is not None:  # one row chunk, as td_detr.row_chunks runs it
        batch = chunk_inputs(batch, slice(0, rows))

    stack: list[str] = []
    for name in PARTS:
        part = getattr(model.model, name)
        for module in part if isinstance(part, torch.nn.ModuleList) else [part]:  # a ModuleList is never called
            module.register_forward_pre_hook(lambda m, a, name=name: stack.append(name))
            module.register_forward_hook(lambda m, a, o: stack.pop() and None)  # returning a value replaces the output
    saved: dict[int, tuple[str, int]] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved.setdefault(storage.data_ptr(), (stack[0] if stack else "heads and loss", storage.nbytes()))
        return tensor

    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast:
        loss = model(**batch).loss
    rss_forward = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    loss.backward()
    by_part = {name: 0.0 for name in PARTS + ("heads and loss",)}
    for part, nbytes in saved.values():
        by_part[part] += nbytes / 2**20
    return dict(key=key, bf16=bf16, rows_seen=seen, rows_run=batch["video_features"].shape[0], saved_mb=by_part,
                peak_rss_forward_mb=rss_forward,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="benchmark.py config keys (td_detr, qd_detr_4l, ...)")
    parser.add_argument("--bf16", action="store_true", help="forward under torch.autocast('cpu', bfloat16)")
    parser.add_argument("--rows", type=int, help="profile one chunk of this many rows (td_detr.row_chunks)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import json

        print(json.dumps(profile(args.configs[0], args.bf16, args.rows, args.threads)))
        return 0
    import json
    import subprocess

    results = []
    for key in args.configs:  # a process each, so each peak RSS is its own
        command = [sys.executable, __file__, key, "--worker", "--threads", str(args.threads)]
        command += (["--bf16"] if args.bf16 else []) + (["--rows", str(args.rows)] if args.rows else [])
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"saved for the backward, MB ({'bf16 autocast' if args.bf16 else 'fp32'}):")
    print(f"{'part':18s}" + "".join(f"{r['key'] + ' (' + str(r['rows_run']) + ' rows)':>26s}" for r in results))
    for part in PARTS + ("heads and loss",):
        print(f"{part:18s}" + "".join(f"{r['saved_mb'][part]:26,.0f}" for r in results))
    print(f"{'all saved':18s}" + "".join(f"{sum(r['saved_mb'].values()):26,.0f}" for r in results))
    print(f"{'peak RSS forward':18s}" + "".join(f"{r['peak_rss_forward_mb']:26,.0f}" for r in results))
    print(f"{'peak RSS step':18s}" + "".join(f"{r['peak_rss_mb']:26,.0f}" for r in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
