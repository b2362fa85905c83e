"""How one ingest of one `ds` is all-or-nothing, shared by the writer (`jobs/ingest.py`) and both
readers (`jobs/core/delta.py` with Spark, `contract/delta_reader.py` without).

Ingest replaces `ds` in four tables, one Delta commit each, and Delta has no commit spanning
tables. So a run's last commit is its row in raw.ingest_runs, recording the version of each
table that holds its rows; a re-ingest of a `ds` that has a row first marks it pending. Readers
resolve a table's latest version, then read the row, then read the table at the version
`version_to_read` returns: a run that stops between two commits is invisible to them.
"""

from __future__ import annotations

from collections.abc import Mapping

from contract.tables import (
    RAW_INGEST_RUNS,
    RAW_INTERACTIONS,
    RAW_ITEMS,
    RAW_QUARANTINE,
    RAW_TAGS,
    Table,
)

# The tables one ingest writes, in commit order; raw.ingest_runs is committed after them.
INGESTED = (RAW_ITEMS, RAW_TAGS, RAW_INTERACTIONS, RAW_QUARANTINE)

# Where the valid rows of each raw.quarantine `source_table` are kept.
KEPT_IN = {"interactions": RAW_INTERACTIONS, "items": RAW_ITEMS, "tags": RAW_TAGS}


class NotCommitted(LookupError):
    """No ingest of the `ds` has committed, so its raw rows are not to be read."""


# What the readers' ingest_run returns for a lake written before raw.ingest_runs existed: its
# raw tables are read at their latest version, as they always were. Ingest creates the marker
# table before its first raw write, so a lake that has it never falls back to this.
PREDATES_MARKER = {"predates_marker": True}


def version_to_read(run: Mapping | None, table: Table, ds: str, latest: int) -> int:
    """The version of `table` to read `ds` at: `run` is raw.ingest_runs' row for `ds` (None when
    there is none) and `latest` the table's latest version, resolved BEFORE `run` was read.

    While a run is pending it may have replaced `ds` in any version after the recorded one, so
    the recorded version is read. Otherwise no version after it replaced `ds` (a run marks the
    row pending before its first write, and commits a row recording versions past all its
    writes), so the latest version holds the same rows and is read instead: it stays readable
    once VACUUM or log retention have removed an old version. Resolving `latest` first pins it
    before any run that starts after `run` was read writes.
    """
    if run is PREDATES_MARKER:
        return latest
    if run is None:
        raise NotCommitted(
            f"{table.name} has no committed ingest for ds={ds} ({RAW_INGEST_RUNS.name} has no "
            f"row for it: never ingested, or no ingest of it finished): run `recs ingest` for "
            f"ds={ds}")
    recorded = {entry["name"]: entry["version"] for entry in run["tables"]}[table.name]
    return recorded if run["pending_run_id"] is not None else max(latest, recorded)


def row_accounting_problems(input_rows: Mapping[str, int], kept: Mapping[str, int],
                            quarantined: Mapping[str, int]) -> list[str]:
    """One line per source table whose rows read are not its rows kept plus quarantined."""
    return [f"{KEPT_IN[source].name}: {rows} rows read from the source, but {kept[source]} kept "
            f"+ {quarantined.get(source, 0)} quarantined"
            for source, rows in sorted(input_rows.items())
            if rows != kept[source] + quarantined.get(source, 0)]
