"""Argument types every command shares, Spark steps and model steps alike, validated once."""

from __future__ import annotations

import argparse
import datetime as dt


def run_date(value: str) -> str:
    """`--ds`: a real calendar date written YYYY-MM-DD, nothing else."""
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.isoformat() != value:
        raise argparse.ArgumentTypeError(f"--ds must be a real date written YYYY-MM-DD, got {value!r}")
    return value


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


def add_lake_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--lake`, the same for every command: $RECS_LAKE, else ./lake."""
    from contract.layout import LAKE_DEFAULT, default_lake

    parser.add_argument("--lake", default=default_lake(),
                        help=f"Root directory of the Delta lake (default: $RECS_LAKE or "
                             f"{LAKE_DEFAULT}).")
