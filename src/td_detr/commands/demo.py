"""`td-detr demo`: a local web page to look at a model's answers (needs the extra: pip install 'td-detr[demo]').

With a data set (the data flags; with none of them and no --video-dir / --clip-model, the synthetic data set): a
searchable list of the evaluation split's queries; choosing one shows the timeline (ground truth against the top
predicted windows), the saliency curve, the windows table and the query's metrics. Free-text queries on a chosen video
work when --clip-model gives the text encoder that made the data set's text features.
With --clip-model and a model trained on CLIP features alone: upload a video (or choose one from --video-dir), type a
query, click a window to jump the player there. CLIP weights are read from a folder or the local Hugging Face cache only.
The page is served on 127.0.0.1 (this machine only) unless --host / --share say otherwise."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import TDDetrInputError
from .data_options import add_data_arguments
from .flag_checks import check_positive_flags
from .video_options import add_long_video_argument

DATA_FLAGS = ("dataset", "data_dir", "train_file", "eval_file", "video_feature_dir", "text_feature_dir")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="a local web page: pick or type a query, see the moments and the saliency curve",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a saved model folder or a Hub repo id")
    add_data_arguments(parser)
    add_long_video_argument(parser)
    group = parser.add_argument_group("video files")
    group.add_argument("--video-dir", help="folder of videos: {vid}.mp4 (etc.) of the data set, and files to choose")
    group.add_argument("--clip-model", metavar="NAME_OR_FOLDER",
                       help="CLIP model for free-text queries and video files (a folder or a cached Hub name)")
    group = parser.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine)")
    group.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    group.add_argument("--share", action="store_true", help="also open a public Gradio share link (off by default)")
    group.add_argument("--top-k", type=int, default=5, help="windows shown per answer (default 5)")
    parser.set_defaults(func=run)


def wants_data(args) -> bool:
    """A data set is shown when a data flag is given, or when nothing asks for videos (then the synthetic one)."""
    return any(getattr(args, flag, None) for flag in DATA_FLAGS) or not (args.video_dir or args.clip_model)


def check_arguments(args) -> None:
    """Flag errors, before anything is loaded."""
    if args.port is not None and not 0 < args.port < 65536:
        raise TDDetrInputError(f"--port {args.port}: not a port number (1-65535)")
    check_positive_flags(args, "top_k")
    if args.video_dir and not Path(args.video_dir).is_dir():
        raise TDDetrInputError(f"--video-dir {args.video_dir} is not a folder")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise TDDetrInputError("the demo needs Gradio, which is not installed: pip install 'td-detr[demo]'") from None


def build_session(args):
    """The model, the data set split and the CLIP encoder the flags name, as a `DemoSession`."""
    from ..demo.session import DemoSession, load_local_clip
    from ..processing_td_detr import load_processor
    from .evaluate import load_model_and_data
    from .model_loading import load_model

    dataset = data_name = None
    synthetic = False
    if wants_data(args):  # the model, its processor and the evaluation split, checked as `td-detr evaluate` does
        model, processor, data, dataset = load_model_and_data(args)
        data_name, synthetic = f"{data.name} / {data.eval_split}", data.name == "synthetic"
    else:
        model = load_model(args.model)
        processor = load_processor(args.model, model.config, long_video=args.long_videos)
    encoder, problem = load_local_clip(args.clip_model, model.config)
    return DemoSession(model, processor=processor, dataset=dataset, data_name=data_name, clip_encoder=encoder,
                       clip_problem=problem, video_dir=args.video_dir, synthetic=synthetic)


def run(args) -> int:
    check_arguments(args)
    from ..demo.app import build_demo, launch

    session = build_session(args)
    demo = build_demo(session, args.model, top_k=args.top_k)
    launch(demo, host=args.host, port=args.port, share=args.share,
           allowed_paths=[args.video_dir] if args.video_dir else ())
    return 0
