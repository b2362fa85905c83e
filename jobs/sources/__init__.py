"""Sources ingest reads: MovieLens, CSV/Parquet with a column mapping, the synthetic generator.

Each reader returns a `RawSource` of string columns; `read_source` picks one from the flags.
"""

from __future__ import annotations

import argparse

from pyspark.sql import SparkSession

from jobs.sources import synthetic
from jobs.sources.base import InputError, RawSource
from jobs.sources.movielens import read_movielens
from jobs.sources.tabular import read_tabular

__all__ = ["InputError", "RawSource", "read_source"]


def read_source(spark: SparkSession, args: argparse.Namespace) -> RawSource:
    if args.source == "synthetic":
        spec = synthetic.SyntheticSpec(num_users=args.synthetic_users,
                                       num_items=args.synthetic_items,
                                       mean_interactions_per_user=args.synthetic_interactions,
                                       seed=args.synthetic_seed)
        return synthetic.read_synthetic(spark, spec, args.ds)
    if not args.path:
        raise InputError(f"--source {args.source} needs --path")
    if args.source == "movielens":
        return read_movielens(spark, args.path)
    return read_tabular(spark, args.source, args)
