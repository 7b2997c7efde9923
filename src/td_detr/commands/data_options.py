"""Data-set flags shared by `td-detr train` and `td-detr evaluate`, and how they resolve to loaded splits."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import TDDetrInputError
from ..registry import DATA_SETS

# The embedded synthetic set, then every data set with files of its own (td_detr.registry).
DATASET_CHOICES = ("synthetic", *(name for name, entry in DATA_SETS.items() if entry.builder))

DEFAULT_SYNTHETIC_DIR = "td-detr-data/synthetic"
EVAL_SPLIT_PREFERENCE = ("validation", "val", "test")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data (default: the embedded synthetic data set)")
    group.add_argument(
        "--dataset", choices=DATASET_CHOICES, default=None,
        help="a known data set; with qvhighlights / charades_sta give --data-dir laid out as the official repos",
    )
    group.add_argument("--data-dir", help="folder of the data set (for --dataset, or any folder in the standard layout)")
    group.add_argument("--train-file", help="training annotations (JSONL) of a data set in the standard layout")
    group.add_argument("--eval-file", help="evaluation annotations (JSONL)")
    group.add_argument("--video-feature-dir", action="append", default=None,
                       help="a folder of {vid}.npz video features; repeat for several feature types")
    group.add_argument("--text-feature-dir", help="folder of qid{qid}.npz text features")
    group.add_argument("--clip-length", type=float, help="seconds per feature row (with --train-file / --eval-file)")
    group.add_argument("--eval-split", help="split to evaluate on (default: validation, else test)")
    group.add_argument("--cache-dir", help="datasets cache folder (default: the datasets default)")
    group.add_argument("--max-samples", type=int, help="use only the first N queries of each split (quick runs)")


@dataclass
class ResolvedData:
    name: str  # "synthetic", "qvhighlights", "charades_sta" or "custom"
    splits: object  # datasets.DatasetDict
    settings: object  # td_detr.data.builder.DatasetSettings
    eval_split: str | None


def dataset_name(args) -> str:
    """The data set the flags name, before loading anything: "custom" for --train-file/--eval-file or a --data-dir
    without --dataset, except a folder written by `td-detr make-synthetic`, which is the synthetic data set."""
    from ..data.synthetic import is_synthetic_dataset

    if args.train_file or args.eval_file:
        return "custom"
    if args.dataset:
        return args.dataset
    if args.data_dir:
        return "synthetic" if is_synthetic_dataset(args.data_dir) else "custom"
    return "synthetic"


def resolve_data(args, *, need_train: bool) -> ResolvedData:
    """Load the splits the flags describe. Raises TDDetrInputError with the offending flag or path."""
    from ..data.builder import get_dataset_settings, load_moment_retrieval_dataset

    common = {}
    if args.max_samples is not None:
        common["max_samples"] = args.max_samples
    if args.train_file or args.eval_file:
        if args.dataset:
            raise TDDetrInputError("give either --dataset or --train-file/--eval-file, not both")
        if not args.video_feature_dir or not args.text_feature_dir:
            raise TDDetrInputError("--train-file/--eval-file need --video-feature-dir (one or more) and --text-feature-dir")
        if args.clip_length is None:
            raise TDDetrInputError("--train-file/--eval-file need --clip-length (seconds per feature row)")
        if need_train and not args.train_file:
            raise TDDetrInputError("training needs --train-file")
        files = {}
        if args.train_file:
            files["train"] = os.path.abspath(args.train_file)
        if args.eval_file:
            files["validation"] = os.path.abspath(args.eval_file)
        options = dict(
            annotation_files=files,
            video_feature_dirs=tuple(os.path.abspath(d) for d in args.video_feature_dir),
            text_feature_dir=os.path.abspath(args.text_feature_dir),
            clip_length=args.clip_length,
            max_video_length=None,
            max_query_length=None,
            **common,
        )
        name, source, data_dir = "custom", "layout", None
    else:
        name = dataset_name(args)
        options = dict(common)
        if name == "synthetic":
            from ..data.synthetic import ensure_synthetic_dataset

            folder = Path(args.data_dir or DEFAULT_SYNTHETIC_DIR)
            if not (folder / "dataset_info.json").is_file():  # an existing data set (any size / preset) is reused
                ensure_synthetic_dataset(folder)
            source, data_dir = str(folder.absolute()), None
        elif name == "custom":
            source, data_dir = args.data_dir, None
            if not Path(args.data_dir).is_dir():
                raise TDDetrInputError(f"--data-dir {args.data_dir} is not a folder")
        else:
            if not args.data_dir:
                raise TDDetrInputError(f"--dataset {name} needs --data-dir (see README: 'Training on {name}')")
            if not Path(args.data_dir).is_dir():
                raise TDDetrInputError(f"--data-dir {args.data_dir} is not a folder")
            source, data_dir = name, os.path.abspath(args.data_dir)
    settings = get_dataset_settings(source, data_dir=data_dir, **options)
    splits = load_moment_retrieval_dataset(source, data_dir=data_dir, cache_dir=args.cache_dir, **options)
    if need_train and "train" not in splits:
        raise TDDetrInputError(f"the data set has no train split (splits: {', '.join(splits)})")
    if need_train:
        _check_training_windows(splits["train"], settings.annotation_files["train"])
    eval_split = args.eval_split
    if eval_split is None:
        eval_split = next((s for s in EVAL_SPLIT_PREFERENCE if s in splits), None)
    elif eval_split not in splits:
        raise TDDetrInputError(f"--eval-split {eval_split}: the data set has splits {', '.join(splits)}")
    return ResolvedData(name=name, splits=splits, settings=settings, eval_split=eval_split)


def _check_training_windows(train, annotation_file: str) -> None:
    """Every training query needs a ground-truth window: without one there is nothing to learn (and no loss)."""
    rows = train.select_columns(["qid", "relevant_windows"]).with_format(None)
    empty = [row["qid"] for row in rows if not row["relevant_windows"]]
    if empty:
        raise TDDetrInputError(
            f"{annotation_file}: {len(empty)} of {len(rows)} training queries have no relevant_windows (qids "
            f"{', '.join(map(str, empty[:5]))}{', ...' if len(empty) > 5 else ''}): training needs at least one "
            "window per query"
        )
