"""Times the official QD-DETR code (``--src``: the folder holding its ``qd_detr/`` and ``utils/``, e.g.
../shared/reference/qd-detr) on one device, for ``scripts/benchmark_gpu.py``. None of the official code is copied:
its modules are imported from ``--src``; the model, criterion and options come from its own ``build_model`` and
option parser (QVHighlights, SlowFast+CLIP, video_tef), the batches from its own label functions, collate and
``prepare_batch_inputs``, the step from its train loop (forward, criterion, weighted loss, backward, clip 0.1, AdamW),
the evaluation from its ``compute_mr_results`` (forward + post-processing), scored by ``td_detr.metrics`` (the
official metric code, which the reference copy does not ship: ``standalone_eval`` is stubbed).

Two modes, each printing one ``RESULT {json}`` line:

* ``--mode measure``: training samples/s at ``--bsz`` (median of per-step times), batch-1 latency, ``--infer-bsz``
  inference throughput, peak device memory of each phase; ``--bf16`` runs forward and loss under bfloat16 autocast
  (the official code has no mixed precision: this is what a user would add), ``--compile`` ``torch.compile``s the model.
* ``--mode run-cost``: ``--steps`` training steps the way the official train loop takes them (a shuffled DataLoader
  over ``--train-queries`` items with the official workers / pinned memory, the official collate) with the official
  evaluation of ``--val-queries`` queries after every epoch of ``ceil(train_queries / bsz)`` steps.

Features are generated (L2-normalised SlowFast and CLIP parts, TEF), from a pool of ``--feature-pool`` videos so that
building thousands of items takes no minutes; every step still collates and copies full batches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import statistics
import sys
import time
import types


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--mode", default="measure", choices=("measure", "run-cost"))
    parser.add_argument("--layers", default="2x2", help="ENCxDEC layers (2x2: QD-DETR as released)")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--bsz", type=int, default=32)
    parser.add_argument("--infer-bsz", type=int, default=256)
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--latency-iters", type=int, default=50)
    parser.add_argument("--throughput-iters", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2000, help="run-cost: training steps to time")
    parser.add_argument("--train-queries", type=int, default=7218)
    parser.add_argument("--val-queries", type=int, default=1550)
    parser.add_argument("--feature-pool", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the official 4)")
    parser.add_argument("--seed", type=int, default=2018)
    return parser.parse_args(argv)


def import_official(src: str, device: str):
    sys.path.insert(0, os.path.abspath(src))
    try:
        import pandas  # noqa: F401  (utils/basic_utils.py imports it for a markdown helper only)
    except ImportError:
        sys.modules["pandas"] = types.ModuleType("pandas")
    if "standalone_eval" not in sys.modules:  # not in the reference copy; inference.py imports it for scoring only
        package, module = types.ModuleType("standalone_eval"), types.ModuleType("standalone_eval.eval")

        def eval_submission(*args, **kwargs):
            raise RuntimeError("standalone_eval is not available: scored with td_detr.metrics instead")

        module.eval_submission, package.eval = eval_submission, module
        sys.modules.update({"standalone_eval": package, "standalone_eval.eval": module})
    import torch

    if device == "cpu":  # qd_detr/transformer.py builds the decoder target with a hard-coded .cuda()
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
    from qd_detr import config, inference, model, start_end_dataset

    return torch, config, model, start_end_dataset, inference


def official_options(config, torch, layers: str, bsz: int, device: str):
    enc, dec = (int(n) for n in layers.split("x"))
    options = config.BaseOptions()
    options.initialize()
    opt = options.parser.parse_args([
        "--dset_name", "hl", "--ctx_mode", "video_tef", "--v_feat_dim", str(2304 + 512), "--t_feat_dim", "512",
        "--bsz", str(bsz), "--exp_id", "gpu", "--enc_layers", str(enc), "--dec_layers", str(dec),
    ])
    opt.device = torch.device(device)  # what BaseOptions.parse() sets, without its file-system side effects
    opt.use_tef, opt.use_video = True, True
    opt.v_feat_dim += 2
    opt.pin_memory = device == "cuda" and not opt.no_pin_memory
    return opt


def sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def peak_mb(torch, device) -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0


def reset_peak(torch, device):
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


class Items:
    """Official-layout items (``{"meta", "model_inputs"}``) with labels from the official dataset's functions."""

    def __init__(self, torch, sed, opt, count: int, clips: int, pool: int, seed: int, first_qid: int = 0):
        self.torch, self.opt, self.count, self.clips, self.seed, self.first_qid = torch, opt, count, clips, seed, first_qid
        generator = torch.Generator().manual_seed(seed)
        unit = lambda x: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # noqa: E731
        start = torch.arange(clips, dtype=torch.float32) / clips
        tef = torch.stack([start, start + 1.0 / clips], dim=1)
        self.videos = [torch.cat([unit(torch.randn(clips, 2304, generator=generator)),
                                  unit(torch.randn(clips, 512, generator=generator)), tef], dim=1) for _ in range(pool)]
        self.texts = [unit(torch.randn(32, 512, generator=generator)) for _ in range(pool)]
        self.labeler = object.__new__(sed.StartEndDataset)  # the official dataset's label functions, no files read
        self.labeler.max_windows, self.labeler.span_loss_type = opt.max_windows, opt.span_loss_type
        self.labeler.clip_len = opt.clip_length
        self.load_labels = True

    def __len__(self):
        return self.count

    def meta(self, index: int) -> dict:
        rng = random.Random(self.seed * 1_000_003 + index)
        count = rng.choice([1, 1, 1, 2, 2, 3])
        lengths = [rng.randint(1, 15) for _ in range(count)]
        free = self.clips - sum(lengths) - (count - 1)
        cuts = sorted(rng.randint(0, free) for _ in range(count))
        windows, clip_ids = [], []
        for i, (length, cut) in enumerate(zip(lengths, cuts)):
            first = cut + sum(lengths[:i]) + i
            windows.append([2 * first, 2 * (first + length)])
            clip_ids.extend(range(first, first + length))
        qid = self.first_qid + index
        return {"qid": qid, "query": f"query {qid}", "vid": f"v{qid}", "duration": 2 * self.clips,
                "relevant_windows": windows, "relevant_clip_ids": clip_ids,
                "saliency_scores": [[rng.randint(0, 4) for _ in range(3)] for _ in clip_ids]}

    def __getitem__(self, index: int) -> dict:
        meta = self.meta(index)
        tokens = 20 + index % 13  # 20-32 tokens, the official cap is 32
        inputs = {"query_feat": self.texts[index % len(self.texts)][:tokens],
                  "video_feat": self.videos[index % len(self.videos)],
                  "span_labels": self.labeler.get_span_labels(list(meta["relevant_windows"]), self.clips)}
        pos, neg, every = self.labeler.get_saliency_labels_all(meta["relevant_clip_ids"], meta["saliency_scores"],
                                                               self.clips)
        inputs.update(saliency_pos_labels=pos, saliency_neg_labels=neg, saliency_all_labels=every)
        return {"meta": meta, "model_inputs": inputs}


def build(args):
    torch, config, qmodel, sed, inference = import_official(args.src, args.device)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    opt = official_options(config, torch, args.layers, args.bsz, args.device)
    model, criterion = qmodel.build_model(opt)
    model.to(opt.device)
    criterion.to(opt.device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opt.lr, weight_decay=opt.wd)
    if args.compile:
        model.compile()
    autocast = (lambda: torch.autocast(args.device, dtype=torch.bfloat16)) if args.bf16 else None
    return torch, sed, inference, opt, model, criterion, optimizer, autocast


def train_step(torch, model, criterion, optimizer, opt, batch, autocast):
    inputs, targets = batch
    with autocast() if autocast else contextlib.nullcontext():
        outputs = model(**inputs)
        losses = criterion(outputs, targets)
        loss = sum(losses[k] * criterion.weight_dict[k] for k in losses if k in criterion.weight_dict)
    optimizer.zero_grad()
    loss.backward()
    if opt.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
    optimizer.step()
    return loss


def measure(args) -> dict:
    torch, sed, inference, opt, model, criterion, optimizer, autocast = build(args)
    device, clock = args.device, time.perf_counter
    items = Items(torch, sed, opt, 4 * args.bsz + args.infer_bsz + 1, args.clips, 64, args.seed)
    collate = lambda rows: sed.prepare_batch_inputs(sed.start_end_collate(rows)[1], opt.device,  # noqa: E731
                                                    non_blocking=opt.pin_memory)
    batches = [collate([items[k * args.bsz + i] for i in range(args.bsz)]) for k in range(4)]
    big = collate([items[4 * args.bsz + i] for i in range(args.infer_bsz)])
    single = collate([items[len(items) - 1]])
    context = autocast if autocast else contextlib.nullcontext

    def timed(call, count: int, warmup: int) -> list[float]:
        times = []
        for i in range(warmup + count):
            sync(torch, device)
            start = clock()
            call()
            sync(torch, device)
            if i >= warmup:
                times.append(clock() - start)
        return times

    def infer(batch):
        with context():
            model(**batch[0])

    figures = {}
    model.eval()
    with torch.no_grad():
        figures["first_inference_s"] = sum(timed(lambda b=b: infer(b), 1, 0)[0] for b in (single, big))  # + compile
        reset_peak(torch, device)
        latencies = timed(lambda: infer(single), args.latency_iters, 5)
        throughput = timed(lambda: infer(big), args.throughput_iters, 2)
    figures["peak_inference_mb"] = peak_mb(torch, device)
    model.train()
    criterion.train()
    turn = iter(range(10**9))

    def step():
        train_step(torch, model, criterion, optimizer, opt, batches[next(turn) % len(batches)], autocast)

    figures["first_train_step_s"] = timed(step, 1, 0)[0]
    reset_peak(torch, device)
    steps = timed(step, args.train_steps, args.warmup)
    step_s = statistics.median(steps)
    figures.update(
        parameters=sum(p.numel() for p in model.parameters()), train_step_s=step_s,
        train_samples_per_s=args.bsz / step_s, original_samples_per_s=args.bsz / step_s, samples_seen_per_step=args.bsz,
        infer_b1_ms=1000 * statistics.median(latencies), infer_big_samples_per_s=args.infer_bsz / statistics.median(throughput),
        peak_training_mb=peak_mb(torch, device),
    )
    raw = dict(train_step_s=steps, infer_b1_s=latencies, infer_big_s=throughput)
    return dict(figures=figures, raw=raw, torch=torch.__version__)


def run_cost(args) -> dict:
    torch, sed, inference, opt, model, criterion, optimizer, autocast = build(args)
    device, clock = args.device, time.perf_counter
    workers = opt.num_workers if args.workers is None else args.workers
    train_items = Items(torch, sed, opt, args.train_queries, args.clips, args.feature_pool, args.seed)
    val_items = Items(torch, sed, opt, args.val_queries, args.clips, args.feature_pool, args.seed + 1, first_qid=10**7)
    loader = torch.utils.data.DataLoader(train_items, batch_size=args.bsz, shuffle=True, num_workers=workers,
                                         pin_memory=opt.pin_memory, collate_fn=sed.start_end_collate)
    val_loader = torch.utils.data.DataLoader(val_items, batch_size=opt.eval_bsz, shuffle=False, num_workers=workers,
                                             pin_memory=opt.pin_memory, collate_fn=sed.start_end_collate)
    steps_per_epoch = math.ceil(args.train_queries / args.bsz)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from td_detr.metrics import evaluate_submission

    ground_truth = [val_items.meta(i) for i in range(len(val_items))]
    done, evaluations, eval_s, first_step_s = 0, 0, 0.0, None
    sync(torch, device)
    start = clock()
    while done < args.steps:
        model.train()
        criterion.train()
        for batch in loader:
            inputs = sed.prepare_batch_inputs(batch[1], opt.device, non_blocking=opt.pin_memory)
            train_step(torch, model, criterion, optimizer, opt, inputs, autocast)
            done += 1
            if first_step_s is None:
                sync(torch, device)
                first_step_s = clock() - start
            if done == args.steps:
                break
        if done % steps_per_epoch == 0 or done == args.steps:  # an epoch ended (the last one may be cut)
            sync(torch, device)
            eval_start = clock()
            with torch.no_grad():
                predictions, _ = inference.compute_mr_results(model, val_loader, opt)
            evaluate_submission(predictions, ground_truth)  # the official metrics (standalone_eval is not shipped)
            sync(torch, device)
            eval_s += clock() - eval_start
            evaluations += 1
    sync(torch, device)
    total = clock() - start
    return dict(steps=done, evaluations=evaluations, steps_per_epoch=steps_per_epoch, total_s=total, eval_s=eval_s,
                first_step_s=first_step_s, predictions=len(predictions), workers=workers, torch=torch.__version__)


def main(argv=None) -> int:
    args = parse_args(argv)
    result = measure(args) if args.mode == "measure" else run_cost(args)
    result.update(layers=args.layers, bf16=args.bf16, compile=args.compile, device=args.device)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
