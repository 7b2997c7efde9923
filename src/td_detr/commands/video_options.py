"""Command-line options for predicting on a video file (``td-detr predict --video FILE --query "..."``) and for drawing
a prediction (``--plot out.png``, with ``--plot-qid N`` in ``td-detr evaluate``). Heavy imports stay inside the
functions so ``td-detr --help`` stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import TDDetrInputError
from ..hub_access import require_hub
from ..features import DEFAULT_CLIP_MODEL  # numpy only; PyAV and transformers' CLIP load on use


def add_video_arguments(parser) -> None:
    """``--video FILE --query TEXT [--clip-model NAME]``."""
    group = parser.add_argument_group("from a video file (instead of --video-features / --text-features)")
    group.add_argument("--video", metavar="FILE", help="a video file (any format FFmpeg reads)")
    group.add_argument("--query", metavar="TEXT", help="the query text (with --video)")
    group.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, metavar="NAME",
                       help=f"CLIP checkpoint (Hub name or folder) for --video (default {DEFAULT_CLIP_MODEL})")


def add_long_video_argument(parser) -> None:
    """``--long-videos window|refuse``: what to do with a video longer than the model's maximum."""
    parser.add_argument("--long-videos", choices=("window", "refuse"), default="window",
                        help="a video longer than the model's max_video_length clips: predict it in half-overlapping "
                             "windows shifted to absolute time, pooled and de-duplicated (default), or refuse it")


def add_plot_argument(parser, with_qid: bool = False) -> None:
    """``--plot out.png`` (and ``--plot-qid N`` for commands that predict many queries)."""
    parser.add_argument("--plot", metavar="OUT.png", help="draw saliency and the top windows to this PNG")
    if with_qid:
        parser.add_argument("--plot-qid", type=int, metavar="N", help="query to draw with --plot (default: the first)")


def print_windows(windows, saliency, clip_length: float, duration: float, top_k: int) -> None:
    """The ``td-detr predict`` table: ranked ``[start, end, score]`` windows and per-clip saliency."""
    print(f"{len(saliency)} clips of {clip_length:g} s ({duration:g} s); top {top_k} windows:")
    print(f"{'rank':>4s} {'start':>8s} {'end':>8s} {'score':>7s}")
    for rank, (start, end, score) in enumerate(windows[:top_k], 1):
        print(f"{rank:4d} {start:8.1f} {end:8.1f} {score:7.4f}")
    best = max(range(len(saliency)), key=saliency.__getitem__)
    print(f"saliency per clip (most salient: clip {best}, {best * clip_length:g}-{(best + 1) * clip_length:g} s):")
    print(" ".join(f"{value:.2f}" for value in saliency))


def run_video_predict(args) -> int:
    """``td-detr predict --model M --video FILE --query TEXT``: decode, encode with CLIP, predict (sliding windows for
    videos longer than the model's maximum), print the table or the JSON record, and draw ``--plot``."""
    if not args.video or not args.query:
        raise TDDetrInputError("--video needs --query (and --query needs --video)")
    if getattr(args, "video_features", None) or getattr(args, "text_features", None):
        raise TDDetrInputError("give either --video/--query or --video-features/--text-features, not both")
    from ..pipeline import moment_retrieval_pipeline
    from .model_loading import load_model

    from ..processing_td_detr import load_processor

    model = load_model(args.model)
    if not Path(args.clip_model).exists():
        require_hub(args.clip_model, "--clip-model")
    processor = load_processor(args.model, model.config, long_video=getattr(args, "long_videos", "window"))
    pipe = moment_retrieval_pipeline(model, clip_model=args.clip_model, device=getattr(args, "device", None),
                                     processor=processor)
    options = {"duration": args.duration} if getattr(args, "duration", None) else {}
    result = pipe(args.video, args.query, **options)
    windows = [[w["start"], w["end"], w["score"]] for w in result["windows"]]
    record = {"query": args.query, "video": str(args.video), "duration": result["duration"],
              "pred_relevant_windows": windows, "pred_saliency_scores": result["saliency"]}
    if getattr(args, "json", False):
        print(json.dumps(record))
    else:
        print_windows(windows, result["saliency"], result["clip_length"], result["duration"],
                      getattr(args, "top_k", 5))
    write_plot(args, record, result["clip_length"], query=args.query, duration=result["duration"])
    return 0


def write_plot(args, record: dict, clip_length: float, *, query=None, ground_truth=None, duration=None):
    """Draw ``record`` (``pred_saliency_scores`` and ``pred_relevant_windows``) to ``args.plot`` when it is set;
    returns the path or None."""
    if not getattr(args, "plot", None):
        return None
    from ..visualize import plot_prediction

    path = plot_prediction(record["pred_saliency_scores"], record["pred_relevant_windows"], clip_length,
                           ground_truth=ground_truth, query=query, duration=duration, path=args.plot)
    print(f"wrote {path}", file=sys.stderr)  # stderr: stdout may be the --json record
    return path


def plot_evaluated_query(args, records, ground_truth, clip_length: float):
    """``td-detr evaluate --plot out.png [--plot-qid N]``: draw one query's prediction with its ground-truth windows
    (``records`` in the submission format, ``ground_truth`` the evaluator's records). Returns the path or None."""
    if not getattr(args, "plot", None):
        return None
    if not records:
        raise TDDetrInputError("--plot: there are no predictions to draw")
    qid = getattr(args, "plot_qid", None)
    qid = records[0]["qid"] if qid is None else qid
    record = next((r for r in records if r["qid"] == qid), None)
    if record is None:
        raise TDDetrInputError(f"--plot-qid {qid}: no such qid among the {len(records)} predicted queries")
    truth = next((r for r in ground_truth if r["qid"] == qid), {})
    return write_plot(args, record, clip_length, query=record.get("query"),
                      ground_truth=truth.get("relevant_windows"), duration=truth.get("duration"))
