"""Data-quality gates between pipeline steps: `recs check --lake L --ds D [...]`.

JVM-free on purpose: a gate runs between two Spark steps (in the Airflow worker, or in
`recs backfill`), and reading a few Delta logs and Parquet footers with `deltalake` takes well
under a second where starting Spark would take tens of seconds.

Checks for one `ds` partition, each raw table read as every reader reads it (at the version
ingest's commit marker raw.ingest_runs gives, `contract/ingest_runs.py`):
- `--max-quarantine-fraction F`: for each raw table, quarantined / (ingested + quarantined) rows
  must not exceed F. Checked per table, because a catalogue that lost most of its items would
  hide behind a large, healthy interaction log in one overall fraction.
- `--require TABLE ...`: each table exists and has rows for `ds` (what the next step reads).
- With either of them on a raw table: an ingest of `ds` committed, each raw table holds the rows
  its raw.ingest_runs row recorded, and every row read from the source is kept or quarantined.

A failure exits non-zero with one line per problem naming the table and the counts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

from contract.args import add_lake_arg, fraction, run_date
from contract.ingest_runs import (
    INGESTED,
    KEPT_IN,
    PREDATES_MARKER,
    NotCommitted,
    row_accounting_problems,
)
from contract.tables import (
    BY_NAME,
    RAW_INGEST_RUNS,
    RAW_INTERACTIONS,
    RAW_ITEMS,
    RAW_QUARANTINE,
)
from jobs.core.step import setup_logging

log = logging.getLogger(__name__)

# Raw tables whose rows ingest routes to raw.quarantine, by the quarantine's `source_table` value.
# Quarantined `tags` rows have no ingested counterpart table (tags are folded into raw.items), so
# they are logged by ingest but not gated.
QUARANTINED_SOURCES = {RAW_INTERACTIONS.name: "interactions", RAW_ITEMS.name: "items"}


@dataclass(frozen=True)
class Gate:
    """What must hold after a pipeline step before the next one may start."""

    require: tuple[str, ...]
    check_quarantine: bool = False


# After each step, the tables it must have left with rows for the steps (and SQL readers) after
# it. The nightly DAG and `recs backfill` run a step's gate right after it; no entry, no gate.
GATES = {
    "ingest": Gate(require=(RAW_INTERACTIONS.name, RAW_ITEMS.name), check_quarantine=True),
    "build-training-set": Gate(require=("features.items", "features.train_interactions",
                                        "features.training_examples",
                                        "features.user_history")),
    "score": Gate(require=("recs.scores", "recs.top_k")),
    "evaluate": Gate(require=("recs.eval_metrics",)),
}

DEFAULT_MAX_QUARANTINE_FRACTION = 0.05


class QualityError(RuntimeError):
    """A gate failed; the message has one line per problem."""


def quarantined_by_source(lake: str, ds: str) -> dict[str, int] | None:
    """Quarantined rows per `source_table` for `ds`; None when raw.quarantine does not exist."""
    import pyarrow.compute as pc

    from contract.delta_reader import partition_dataset

    dataset = partition_dataset(lake, RAW_QUARANTINE, ds)
    if dataset is None:
        return None
    column = dataset.to_table(columns=["source_table"], filter=pc.field("ds") == ds)["source_table"]
    counts = pc.value_counts(column).to_pylist()
    return {c["values"]: c["counts"] for c in counts}


def problems(lake: str, ds: str, max_quarantine_fraction: float | None = None,
             require: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Every failed check for `ds`, one line each; empty when the gate passes."""
    from contract.delta_reader import count_rows

    found = []
    if max_quarantine_fraction is not None or any(BY_NAME[name] in INGESTED for name in require):
        found += ingest_run_problems(lake, ds)
    for name in require:
        table = BY_NAME[name]
        try:
            rows = count_rows(lake, table, ds)
        except NotCommitted:
            continue  # ingest_run_problems named it
        if rows is None:
            found.append(f"{name}: table does not exist at {table.path(lake)} "
                         f"(run `recs {table.writer}` for ds={ds})")
        elif rows == 0:
            found.append(f"{name}: 0 rows for ds={ds}; the next step needs rows")
        else:
            log.info("%s: %d rows for ds=%s", name, rows, ds)
    if max_quarantine_fraction is not None:
        found += _quarantine_problems(lake, ds, max_quarantine_fraction)
    return found


def ingest_run_problems(lake: str, ds: str) -> list[str]:
    """No committed ingest of `ds`, or raw tables that disagree with its raw.ingest_runs row."""
    from contract import delta_reader

    run = delta_reader.ingest_run(lake, ds)
    if run is PREDATES_MARKER:
        log.warning("%s does not exist: the lake predates ingest's commit marker, so nothing "
                    "says ds=%s was ingested whole (re-ingest it to check)", RAW_INGEST_RUNS.name, ds)
        return []
    if run is None:
        return [f"{RAW_INGEST_RUNS.name}: no committed ingest for ds={ds}, so readers refuse its "
                f"raw tables (run `recs ingest` for ds={ds})"]
    if run["pending_run_id"] is not None:
        log.warning("ds=%s: ingest run %s, started %s, has not committed (running, or it stopped "
                    "between two commits); readers see run %s until one does", ds,
                    run["pending_run_id"], run["pending_since"], run["run_id"])
    found, rows = [], {}
    for entry in run["tables"]:
        rows[entry["name"]] = delta_reader.count_rows(lake, BY_NAME[entry["name"]], ds) or 0
        if rows[entry["name"]] != entry["num_rows"]:
            found.append(f"{entry['name']}: {rows[entry['name']]} rows for ds={ds}, but "
                         f"{RAW_INGEST_RUNS.name} recorded {entry['num_rows']} (run "
                         f"{run['run_id']})")
    kept = {source: rows.get(table.name, 0) for source, table in KEPT_IN.items()}
    input_rows = {entry["source_table"]: entry["num_rows"] for entry in run["input_rows"]}
    return found + row_accounting_problems(input_rows, kept, quarantined_by_source(lake, ds) or {})


def _quarantine_problems(lake: str, ds: str, limit: float) -> list[str]:
    from contract.delta_reader import count_rows

    try:
        quarantined = quarantined_by_source(lake, ds)
    except NotCommitted:
        return []  # ingest_run_problems named it
    if quarantined is None:
        return [f"{RAW_QUARANTINE.name}: table does not exist at {RAW_QUARANTINE.path(lake)} "
                f"(run `recs ingest` for ds={ds})"]
    found = []
    for name, source in QUARANTINED_SOURCES.items():
        bad = quarantined.get(source, 0)
        good = count_rows(lake, BY_NAME[name], ds) or 0
        share = bad / (good + bad) if good + bad else 0.0
        log.info("%s: %d ingested, %d quarantined (%.2f%%) for ds=%s", name, good, bad,
                 100 * share, ds)
        if share > limit:
            found.append(f"{name}: {bad} of {good + bad} rows quarantined for ds={ds} "
                         f"({share:.1%}), above the allowed {limit:.1%} "
                         f"(reasons in {RAW_QUARANTINE.name})")
    return found


def check(lake: str, ds: str, max_quarantine_fraction: float | None = None,
          require: tuple[str, ...] | list[str] = ()) -> None:
    """Raise QualityError listing every problem, or return when the gate passes."""
    found = problems(lake, ds, max_quarantine_fraction, require)
    if found:
        raise QualityError(f"quality gate failed for ds={ds}:\n  " + "\n  ".join(found))


def check_step(lake: str, ds: str, step: str, max_quarantine_fraction: float) -> None:
    """Run the gate that follows `step`, if it has one."""
    gate = GATES.get(step)
    if gate is not None:
        check(lake, ds, max_quarantine_fraction if gate.check_quarantine else None, gate.require)


def quarantine_limit(value: str) -> float:
    """A fraction in [0, 1): 0 tolerates no quarantined row at all."""
    if float(value) == 0.0:
        return 0.0
    return fraction(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recs check",
        description="Data-quality gate for one run date, without Spark: fail (exit 1) when too "
                    "many raw rows were quarantined, a table the next step needs is missing or "
                    "empty, or (when a raw table is judged) no ingest of --ds committed or its raw "
                    "tables disagree with raw.ingest_runs. Each problem is printed naming the "
                    "table and the counts.")
    add_lake_arg(parser)
    parser.add_argument("--ds", type=run_date, required=True,
                        help="Run date YYYY-MM-DD whose partitions are checked.")
    parser.add_argument("--max-quarantine-fraction", type=quarantine_limit, default=None,
                        metavar="F",
                        help="Fail when, for raw.interactions or raw.items, quarantined / "
                             "(ingested + quarantined) rows at --ds exceeds F, e.g. 0.05 (default: "
                             "not checked).")
    parser.add_argument("--require", nargs="+", default=[], metavar="TABLE",
                        choices=sorted(BY_NAME),
                        help="Tables that must exist and have rows at --ds, any of: "
                             + ", ".join(sorted(BY_NAME)) + ".")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="Log level (default: %(default)s); INFO logs every count checked.")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.max_quarantine_fraction is None and not args.require:
        build_parser().error("nothing to check: give --max-quarantine-fraction and/or --require")
    try:
        check(args.lake, args.ds, args.max_quarantine_fraction, args.require)
    except QualityError as error:
        raise SystemExit(f"recs check: {error}") from None
    print(f"recs check: ds={args.ds} passed")


if __name__ == "__main__":
    main(sys.argv[1:])
