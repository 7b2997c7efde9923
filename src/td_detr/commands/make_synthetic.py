"""``td-detr make-synthetic OUT``: write the small synthetic data set (standard layout) used as the default data."""

from __future__ import annotations

import argparse

from ..data.synthetic import PRESETS  # numpy only: no torch for `td-detr --help`


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "make-synthetic",
        help="write a small synthetic moment-retrieval data set in the standard layout",
        description=(
            "Write a synthetic data set (train / validation / test with ground truth and saliency) in the standard "
            "QVHighlights layout; the 'layout' data config reads it. Preset 'spurious' plants a cue next to every "
            "moment in train and moves it away (or removes it) in the evaluation splits; 'spurious_hard' makes the "
            "action fainter, so the cue is the much easier signal (its README scores a cue-only and an action-only "
            "oracle on every split). Deterministic by seed."
        ),
    )
    parser.add_argument("out", metavar="OUT", help="output folder (must be empty or absent)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--size", type=int, default=600, help="train queries; other splits get size/4 (default: 600)")
    parser.add_argument(
        "--preset", choices=PRESETS, default="default", help="data preset (default: default)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it holds a synthetic data set")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..data.synthetic import write_synthetic_dataset

    out = write_synthetic_dataset(
        args.out, seed=args.seed, size=args.size, preset=args.preset, overwrite=args.overwrite
    )
    print(f"wrote synthetic data set (preset {args.preset}, seed {args.seed}) to {out}; see {out / 'README.md'}")
    return 0
