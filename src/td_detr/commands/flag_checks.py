"""Numeric flags checked before any work: a zero, negative or non-finite value is one line and exit 2."""

from __future__ import annotations

import math

from ..errors import TDDetrInputError


def check_positive_flags(args, *names: str) -> None:
    """Each named flag (argparse dest), when given, must be a finite number above zero."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise TDDetrInputError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
