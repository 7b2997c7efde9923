"""The ``td-detr`` command line (also ``python -m td_detr``).

Each sub-command lives in its own module under :mod:`td_detr.commands` and exposes ``add_parser(subparsers)``,
which registers the sub-command and sets ``func`` (called with the parsed arguments; returns an exit code).
Bad input raises :class:`~td_detr.errors.TDDetrInputError`; it is printed as one clear line and the command
exits with code 2, never with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import TDDetrInputError

# Sub-command modules, in the order ``td-detr --help`` lists them.
COMMAND_MODULES = (
    "train",
    "evaluate",
    "predict",
    "score",
    "spurious_eval",
    "make_synthetic",
    "push",
    "convert",
    "demo",
)


def _installed_version() -> str:
    from importlib.metadata import version

    return version("td-detr")  # pyproject.toml is the one place the version is written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="td-detr",
        description="TD-DETR video moment retrieval: train, evaluate, predict, score, convert and share models.",
    )
    parser.add_argument("--version", action="version", version=f"td-detr {_installed_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"td_detr.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"td_detr.commands.{name}":
                continue  # that sub-command is not part of this build
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TDDetrInputError as error:
        print(f"td-detr {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", None)
        print(f"td-detr {args.command}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
