"""Argument types every command shares, Spark steps and model steps alike, validated once."""

from __future__ import annotations

import argparse
import datetime as dt
import os


def run_date(value: str) -> str:
    """`--ds`: a real calendar date written YYYY-MM-DD, nothing else."""
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.isoformat() != value:
        raise argparse.ArgumentTypeError(f"--ds must be a real date written YYYY-MM-DD, got {value!r}")
    return value


def utc_time(value: str) -> dt.datetime:
    """A date or ISO 8601 date-time (`2026-11-22`, `2026-11-22T06:00:00`); without an offset, UTC."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date or ISO 8601 date-time such as 2026-11-22T06:00:00, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def fraction(value: str) -> float:
    number = float(value)
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {value}")
    return number


def holdout_fraction(value: str) -> float | None:
    """`--holdout-fraction`: a fraction for evaluation mode, or 0 for nightly mode (no holdout).

    0 exists so that a scheduler can pass the flag on every run and choose the mode by value.
    """
    return None if float(value) == 0 else fraction(value)


def lake_dir(value: str) -> str:
    """`--lake`: a directory, or a path where one can be made; never an existing file (every
    write under it would fail deep inside Spark, naming a table path rather than the flag)."""
    if os.path.exists(value) and not os.path.isdir(value):
        raise argparse.ArgumentTypeError(f"{value} is a file; the lake must be a directory "
                                         "(or a path that does not exist yet)")
    return value


def add_lake_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--lake`, the same for every command: $RECS_LAKE, else ./lake."""
    from contract.layout import LAKE_DEFAULT, default_lake

    parser.add_argument("--lake", type=lake_dir, default=default_lake(),
                        help=f"Root directory of the Delta lake (default: $RECS_LAKE or "
                             f"{LAKE_DEFAULT}).")
