"""Entry point of the `td-detr` command. It asks `td_detr` to defer its heavy imports (torch, transformers) so that
`td-detr --help` and `td-detr score` start in well under a second; sub-commands import what they need."""

import os
import sys

os.environ.setdefault("TD_DETR_LAZY_IMPORT", "1")


def main() -> int:
    from td_detr.cli import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
