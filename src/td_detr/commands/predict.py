"""`td-detr predict`: ranked windows (seconds) and per-clip saliency for one (video, query) pair, given either as
feature files in the standard layout (one `.npz` per video feature type, key `features`, [clips, dim], in the
training order, and the query's `qid{N}.npz`, key `last_hidden_state`) or as a video file and a query string
(`--video FILE --query "..."`, CLIP features extracted on the fly; needs a CLIP-feature model such as td-detr-qvh-clip).
Features are prepared by the model's processor; a video longer than the model's maximum is predicted in
half-overlapping windows (pooled, NMS), or refused with `--long-videos refuse`. Windows are in seconds of the given
clips, clamped to `--duration`. `--plot out.png` draws the saliency curve with the top windows."""

from __future__ import annotations

import argparse
import json

from ..errors import TDDetrInputError
from .video_options import (
    add_long_video_argument,
    add_plot_argument,
    add_video_arguments,
    print_windows,
    run_video_predict,
    write_plot,
)


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
    add_long_video_argument(parser)
    add_video_arguments(parser)
    add_plot_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..data.layout import TEXT_FEATURE_KEY, VIDEO_FEATURE_KEY, read_feature_array
    from ..output_paths import check_writable_file
    from ..processing_td_detr import load_processor
    from .model_loading import load_model

    if args.duration is not None and not args.duration > 0:
        raise TDDetrInputError(f"--duration must be a positive number of seconds, got {args.duration:g}")
    if args.plot:
        check_writable_file(args.plot, "--plot")
    if args.video or args.query:
        return run_video_predict(args)
    if not args.video_features or not args.text_features:
        raise TDDetrInputError("give --video-features and --text-features, or --video and --query")
    model = load_model(args.model)
    processor = load_processor(args.model, model.config, long_video=args.long_videos)
    types = [read_feature_array(path, VIDEO_FEATURE_KEY) for path in args.video_features]
    text = read_feature_array(args.text_features, TEXT_FEATURE_KEY)
    try:
        inputs = processor([types], [text])
    except TDDetrInputError as error:
        raise TDDetrInputError(f"--video-features {' '.join(args.video_features)}: {error}") from None
    model.eval()
    with torch.no_grad():
        outputs = model(**{name: inputs[name] for name in processor.model_input_names})
    record = processor.post_process_moment_retrieval(outputs, [args.duration], inputs["window_starts"])[0]
    clips = len(record["pred_saliency_scores"])
    duration = min(args.duration or float("inf"), clips * processor.clip_length)
    write_plot(args, record, processor.clip_length, duration=duration)
    if args.json:
        print(json.dumps(record))
        return 0
    print_windows(record["pred_relevant_windows"], record["pred_saliency_scores"], processor.clip_length, duration,
                  args.top_k)
    return 0
