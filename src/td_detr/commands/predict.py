"""`td-detr predict`: ranked windows (seconds) and per-clip saliency for one (video, query) pair, given either as
feature files in the standard layout (one `.npz` per video feature type, key `features`, [clips, dim], in the
training order, and the query's `qid{N}.npz`, key `last_hidden_state`) or as a video file and a query string
(`--video FILE --query "..."`, CLIP features extracted on the fly; needs a CLIP-feature model such as td-detr-qvh-clip).
`--plot out.png` draws the saliency curve with the top windows."""

from __future__ import annotations

import argparse
import json

from ..errors import TDDetrInputError
from .video_options import add_plot_argument, add_video_arguments, run_video_predict, write_plot


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict moments for one video and query",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a saved model folder or a Hub repo id")
    parser.add_argument("--video-features", nargs="+", metavar="F.npz",
                        help="one feature file per video feature type, in the training order")
    parser.add_argument("--text-features", metavar="qidN.npz", help="the query's token features")
    parser.add_argument("--duration", type=float, help="video length in seconds (default: clips × clip length)")
    parser.add_argument("--top-k", type=int, default=5, help="how many windows to print (default 5)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON instead of a table")
    add_video_arguments(parser)
    add_plot_argument(parser)
    parser.set_defaults(func=run)


def load_pair(video_files, text_file, max_video_length=None, max_query_length=None):
    """Video features (per-type L2-normalised, cut to the shortest type, concatenated) and text features, exactly as
    the data set loader prepares them."""
    import numpy as np

    from ..data.layout import TEXT_FEATURE_KEY, VIDEO_FEATURE_KEY, l2_normalize_rows, read_feature_array

    types = [read_feature_array(path, VIDEO_FEATURE_KEY) for path in video_files]
    length = min(len(t) for t in types)
    if max_video_length:
        length = min(length, max_video_length)
    video = np.concatenate([l2_normalize_rows(t[:length]) for t in types], axis=1)
    text = l2_normalize_rows(read_feature_array(text_file, TEXT_FEATURE_KEY)[:max_query_length])
    return video.astype(np.float32), text.astype(np.float32)


def run(args) -> int:
    import torch

    from .model_loading import load_model

    if args.video or args.query:
        return run_video_predict(args)
    if not args.video_features or not args.text_features:
        raise TDDetrInputError("give --video-features and --text-features, or --video and --query")
    model = load_model(args.model)
    config = model.config
    video, text = load_pair(args.video_features, args.text_features, config.max_video_length, config.max_query_length)
    if video.shape[1] != config.video_feature_size or text.shape[1] != config.text_feature_size:
        raise TDDetrInputError(
            f"features are {video.shape[1]}-d video / {text.shape[1]}-d text but the model expects "
            f"{config.video_feature_size} / {config.text_feature_size} (give every video feature type, in order)"
        )
    duration = args.duration or len(video) * config.clip_length
    model.eval()
    with torch.no_grad():
        outputs = model(
            video_features=torch.from_numpy(video)[None], video_mask=torch.ones(1, len(video)),
            text_features=torch.from_numpy(text)[None], text_mask=torch.ones(1, len(text)),
        )
    record = model.post_process(outputs, [duration])[0]
    write_plot(args, record, config.clip_length, duration=duration)
    if args.json:
        print(json.dumps(record))
        return 0
    print(f"{len(video)} clips of {config.clip_length:g} s ({duration:g} s); top {args.top_k} windows:")
    print(f"{'rank':>4s} {'start':>8s} {'end':>8s} {'score':>7s}")
    for rank, (start, end, score) in enumerate(record["pred_relevant_windows"][: args.top_k], 1):
        print(f"{rank:4d} {start:8.1f} {end:8.1f} {score:7.4f}")
    saliency = record["pred_saliency_scores"]
    best = max(range(len(saliency)), key=saliency.__getitem__)
    print(f"saliency per clip (most salient: clip {best}, {best * config.clip_length:g}-"
          f"{(best + 1) * config.clip_length:g} s):")
    print(" ".join(f"{value:.2f}" for value in saliency))
    return 0
