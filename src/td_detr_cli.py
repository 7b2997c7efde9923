"""Entry point of the `td-detr` command. `td_detr` imports its heavy parts (torch, transformers' models) on first
use, so `td-detr --help` and `td-detr score` start fast; sub-commands import what they need."""

import sys


def main() -> int:
    from td_detr.cli import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
