"""Time the data builder at QVHighlights sizes with generated features.

Writes N videos of SlowFast [75, 2304] + CLIP [75, 512] features and text [<=32, 512] (random lengths 8-40 tokens,
so some are cut), then measures: writing the feature files, preparing the Arrow cache, reopening it, and loading
32-row batches in torch format (random single-row access, as a DataLoader does, and contiguous slices).

    python scripts/benchmark_data.py --videos 500 --workdir /tmp/td_detr_bench
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from td_detr.data import load_moment_retrieval_dataset, write_annotations, write_text_features, write_video_features


def write_fake_qvhighlights(root: Path, videos: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(videos):
        vid = f"fake{i:05d}_0.0_150.0"
        write_video_features(root / "slowfast_features", vid, rng.standard_normal((75, 2304), dtype=np.float32))
        write_video_features(root / "clip_features", vid, rng.standard_normal((75, 512), dtype=np.float32))
        tokens = int(rng.integers(8, 41))
        write_text_features(root / "clip_text_features", i, rng.standard_normal((tokens, 512), dtype=np.float32))
        st = 2 * int(rng.integers(0, 60))
        records.append(
            {"qid": i, "query": f"query {i}", "vid": vid, "duration": 150, "relevant_windows": [[st, st + 20]],
             "relevant_clip_ids": list(range(st // 2, st // 2 + 10)), "saliency_scores": [[2, 3, 4]] * 10}
        )
    write_annotations(root / "highlight_train_release.jsonl", records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=500)
    parser.add_argument("--batches", type=int, default=50, help="32-row batches to time")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed after)")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="td_detr_bench_"))
    data, cache = workdir / "data", workdir / "cache"
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        t = time.perf_counter()
        write_fake_qvhighlights(data, args.videos)
        print(f"write {args.videos} videos of features: {time.perf_counter() - t:.2f} s")

        t = time.perf_counter()
        train = load_moment_retrieval_dataset("qvhighlights", data_dir=data, cache_dir=cache)["train"]
        print(f"prepare (Arrow cache): {time.perf_counter() - t:.2f} s")
        arrow_mb = sum(p.stat().st_size for p in cache.rglob("*.arrow")) / 2**20
        print(f"arrow cache size: {arrow_mb:.0f} MiB")

        t = time.perf_counter()
        train = load_moment_retrieval_dataset("qvhighlights", data_dir=data, cache_dir=cache)["train"]
        print(f"reopen from cache: {time.perf_counter() - t:.3f} s")

        # Best of 3 repeats: the 2 shared cores make single timings noisy.
        rng = np.random.default_rng(0)
        batches = [[int(i) for i in rng.integers(0, len(train), 32)] for _ in range(args.batches)]
        for fmt in ("numpy", "torch"):
            view = load_moment_retrieval_dataset("qvhighlights", data_dir=data, cache_dir=cache, format=fmt)["train"]
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                for batch in batches:
                    rows = [view[i] for i in batch]
                best = min(best, (time.perf_counter() - t) / len(batches) * 1e3)
            assert tuple(rows[0]["video_features"].shape) == (75, 2816) and rows[0]["text_features"].shape[0] <= 32
            print(f"32 random rows ({fmt}): {best:.1f} ms per batch")
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                count = 0
                for start in range(0, min(len(view), args.batches * 32), 32):
                    view[start : start + 32]
                    count += 1
                best = min(best, (time.perf_counter() - t) / count * 1e3)
            print(f"32-row slice ({fmt}): {best:.1f} ms per batch")

        vids = train["vid"]
        t = time.perf_counter()
        for start in range(0, min(len(train), args.batches * 32), 32):
            for vid in vids[start : start + 32]:
                for folder in ("slowfast_features", "clip_features"):
                    np.load(data / folder / f"{vid}.npz")["features"]
        baseline_ms = (time.perf_counter() - t) / count * 1e3
        print(f"baseline: raw np.load of both video feature files, 32 rows: {baseline_ms:.1f} ms per batch")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
