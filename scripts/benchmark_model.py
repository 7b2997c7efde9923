"""Speed, size and memory of the default TD-DETR model next to the QD-DETR baseline config, measured in one run.

For each config: parameters, one training step (forward + loss + backward + grad clip + AdamW) at batch 32 × 75 clips
with the default feature sizes (2816 video + TEF, 512 text, 32 tokens), batch-1 inference latency (eval mode, no
negative pass), and the peak resident memory of a fresh process doing both. Each config runs in its own process so the
peak memory figures are separate.

    python scripts/benchmark_model.py            # full (a few minutes on 2 cores)
    python scripts/benchmark_model.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import time

CONFIGS = {
    "td-detr (4/4/4, dynamics)": dict(),
    "qd-detr baseline (2/2/2)": dict(baseline=True),
    "qd-detr arch at 4/4/4": dict(baseline=True, t2v_layers=4, encoder_layers=4, decoder_layers=4),
}


def make_batch(config, batch_size, clips, tokens, generator):
    import torch

    video = torch.nn.functional.normalize(torch.randn(batch_size, clips, config.video_feature_size, generator=generator), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(batch_size, tokens, config.text_feature_size, generator=generator), dim=-1)
    labels = []
    for _ in range(batch_size):
        start = int(torch.randint(0, clips - 10, (1,), generator=generator))
        saliency = torch.zeros(clips)
        saliency[start : start + 10] = torch.randint(1, 13, (10,), generator=generator).float()
        labels.append(
            dict(
                spans=torch.tensor([[(start + 5) / clips, 10 / clips]]),
                saliency_pos_labels=torch.tensor([start + 2, start + 5]),
                saliency_neg_labels=torch.tensor([(start + 20) % clips, (start + 40) % clips]),
                saliency_all_labels=saliency,
            )
        )
    return dict(
        video_features=video,
        video_mask=torch.ones(batch_size, clips),
        text_features=text,
        text_mask=torch.ones(batch_size, tokens),
        labels=labels,
    )


def measure(name: str, overrides: dict, threads: int, repeats: int, queue) -> None:
    import torch

    from td_detr import TDDetrConfig, TDDetrForMomentRetrieval

    torch.set_num_threads(threads)
    overrides = dict(overrides)
    config = TDDetrConfig.qd_detr_baseline(**{k: v for k, v in overrides.items() if k != "baseline"}) if overrides.pop(
        "baseline", False
    ) else TDDetrConfig(**overrides)
    torch.manual_seed(0)
    model = TDDetrForMomentRetrieval(config)
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)
    batch = make_batch(config, 32, 75, 32, generator)

    model.train()
    step_times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        if i:  # the first step warms up allocators and kernels
            step_times.append(time.perf_counter() - start)

    model.eval()
    single = {k: v[:1] for k, v in batch.items() if k != "labels"}
    latencies = []
    with torch.inference_mode():
        for i in range(5 * repeats + 3):
            start = time.perf_counter()
            model(**single)
            if i >= 3:
                latencies.append(time.perf_counter() - start)
    queue.put(
        dict(
            name=name,
            parameters=parameters,
            train_step_s=statistics.median(step_times),
            infer_ms=1000 * statistics.median(latencies),
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 training steps and 15 inferences per config")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2, as the targets)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    repeats = 3 if args.quick else 8

    context = multiprocessing.get_context("spawn")
    results = []
    for name, overrides in CONFIGS.items():
        queue = context.Queue()
        process = context.Process(target=measure, args=(name, overrides, args.threads, repeats, queue))
        process.start()
        results.append(queue.get())
        process.join()

    base = results[1]
    print(f"threads={args.threads}, batch 32 × 75 clips × 2816(+2 TEF) video, 32 × 512 text; median of {repeats} steps")
    print(f"{'config':28s} {'params':>10s} {'train step':>11s} {'vs base':>8s} {'infer b=1':>10s} {'vs base':>8s} {'peak RSS':>9s}")
    for r in results:
        print(
            f"{r['name']:28s} {r['parameters'] / 1e6:9.2f}M {r['train_step_s']:10.3f}s {r['train_step_s'] / base['train_step_s']:7.2f}x "
            f"{r['infer_ms']:8.1f}ms {r['infer_ms'] / base['infer_ms']:7.2f}x {r['peak_rss_mb']:7.0f}MB"
        )
    print("targets (official QD-DETR code, same kind of machine): 1.41 s/step at 2 layers, 2.56 s at 4; "
          "22 ms / 47 ms batch-1 inference; 7.59 M parameters")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
