"""Time ``DataCollatorForMomentRetrieval`` on one batch at QVHighlights sizes; prints ms/batch.

Rows are random (L 75 clips × 2816 = SlowFast 2304 + CLIP 512, each type L2-normalised; text 32 × 512; one to three
windows with clip ids and saliency scores), built in memory. Reported: the median and the best of ``--repeats`` calls
for the evaluation collator and for the training collator with each pairing / similarity asked for.

    python scripts/benchmark_collator.py [--batch-size 32] [--repeats 20] [--torch-threads N] [--top50]

The target is <= 5% of a training step of the default model (~1 s), i.e. <= 50 ms. The similarity products run in
torch and follow ``--torch-threads`` (DataLoader workers use 1).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from td_detr.data.collator import DataCollatorForMomentRetrieval


def make_rows(batch_size: int, rng: np.random.Generator, clips=75, dims=(2304, 512), text=(32, 512)) -> list[dict]:
    rows = []
    for i in range(batch_size):
        types = [rng.standard_normal((clips, d), dtype=np.float32) for d in dims]
        video = np.concatenate([t / np.linalg.norm(t, axis=1, keepdims=True) for t in types], axis=1)
        windows, clip_ids = [], []
        for _ in range(int(rng.integers(1, 4))):
            start = int(rng.integers(0, clips - 6))
            end = start + int(rng.integers(1, 6))
            windows.append([2.0 * start, 2.0 * end])
            clip_ids.extend(range(start, end))
        clip_ids = sorted(set(clip_ids))
        rows.append(
            {
                "qid": i,
                "query": f"query {i}",
                "vid": f"video{i}",
                "duration": 2.0 * clips,
                "video_features": torch.from_numpy(video),
                "text_features": torch.from_numpy(rng.standard_normal(text, dtype=np.float32)),
                "relevant_windows": windows,
                "relevant_clip_ids": clip_ids,
                "saliency_scores": rng.integers(0, 5, (len(clip_ids), 3)).tolist(),
            }
        )
    return rows


def time_collator(collator, rows, repeats: int) -> tuple[float, float, int]:
    collator(rows)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        batch = collator(rows)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times), batch["video_features"].shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: leave)")
    parser.add_argument("--top50", action="store_true", help="also time the official top-50 similarity")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    rows = make_rows(args.batch_size, np.random.default_rng(0))
    cases = [
        ("eval", dict(training=False)),
        ("train, pairing=none", dict(training=True, synthesis_pairing="none")),
        ("train, pairing=random", dict(training=True, synthesis_pairing="random")),
        ("train, pairing=similarity (Eq. 1)", dict(training=True)),
        ("train, similarity, keep_originals=False", dict(training=True, synthesis_keep_originals=False)),
    ]
    if args.top50:
        cases.append(("train, similarity=top50", dict(training=True, synthesis_similarity="top50")))
    print(f"batch {args.batch_size} rows, L 75, Dv 2816, text 32x512, torch threads {torch.get_num_threads()}")
    for name, kwargs in cases:
        median, best, size = time_collator(DataCollatorForMomentRetrieval(seed=0, **kwargs), rows, args.repeats)
        print(f"{name:42s} median {median:7.1f} ms  best {best:7.1f} ms  -> {size} samples")


if __name__ == "__main__":
    main()
