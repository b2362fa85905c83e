"""Read lake tables with the `deltalake` package: no Spark, no JVM (GPU nodes, quality gates and
DuckDB have neither). The Spark twin of this reader is `jobs/core/delta.py`."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from contract.ingest_runs import INGESTED, PREDATES_MARKER, version_to_read
from contract.tables import RAW_INGEST_RUNS, Table


def delta_table(lake: str, table: Table, missing_ok: bool = False):
    """`table`'s current version as a `deltalake.DeltaTable` (nothing read yet); None when the
    table does not exist and `missing_ok`."""
    from deltalake import DeltaTable

    path = table.path(lake)
    if not DeltaTable.is_deltatable(path):
        if missing_ok:
            return None
        raise FileNotFoundError(f"{table.name}: no Delta table at {path}: run `recs {table.writer}` "
                                "first")
    return DeltaTable(path)


def dataset(lake: str, table: Table, missing_ok: bool = False) -> pds.Dataset | None:
    """`table` as a pyarrow dataset, for counting or filtering without reading it all."""
    found = delta_table(lake, table, missing_ok)
    return None if found is None else found.to_pyarrow_dataset()


def table_as_read(lake: str, table: Table, ds: str, missing_ok: bool = False):
    """`table` as readers of `ds` see it: a table ingest writes at the version `committed_table`
    resolves (`NotCommitted` when no ingest of `ds` committed), any other at its latest; None
    when it does not exist and `missing_ok`."""
    if table in INGESTED:
        return committed_table(lake, table, ds, missing_ok)
    return delta_table(lake, table, missing_ok)


def partition_dataset(lake: str, table: Table, ds: str) -> pds.Dataset | None:
    """`table_as_read` as a pyarrow dataset; None when the table does not exist."""
    found = table_as_read(lake, table, ds, missing_ok=True)
    return None if found is None else found.to_pyarrow_dataset()


def count_rows(lake: str, table: Table, ds: str) -> int | None:
    """Rows of `table` in partition `ds`, from Parquet footers (no data page is read); None when
    the table does not exist."""
    dataset = partition_dataset(lake, table, ds)
    return None if dataset is None else dataset.count_rows(filter=pc.field("ds") == ds)


def ingest_run(lake: str, ds: str) -> dict | None:
    """raw.ingest_runs' row for `ds`; None when there is none; PREDATES_MARKER when the lake has
    no raw.ingest_runs at all."""
    runs = delta_table(lake, RAW_INGEST_RUNS, missing_ok=True)
    if runs is None:
        return PREDATES_MARKER
    rows = runs.to_pyarrow_table(filters=[("ds", "=", ds)]).to_pylist()
    return rows[0] if rows else None


def committed_table(lake: str, table: Table, ds: str, missing_ok: bool = False):
    """A table ingest writes, at the version to read `ds` at: as the last ingest of `ds` that
    committed wrote it (`contract/ingest_runs.py`); `NotCommitted` when none did, None when the
    table does not exist and `missing_ok`."""
    found = delta_table(lake, table, missing_ok)
    if found is None:
        return None
    # found.version() is resolved before the run's row is read: see version_to_read.
    version = version_to_read(ingest_run(lake, ds), table, ds, found.version())
    if version != found.version():
        found.load_as_version(version)
    return found


def read_partition(
    lake: str, table: Table, ds: str, columns: list[str] | None = None, allow_empty: bool = False
) -> pa.Table:
    """The rows of one `ds` partition of `table` (only `columns` when given); a table ingest
    writes as `committed_table` resolves it."""
    unknown = sorted(set(columns or ()) - set(table.column_names))
    if unknown:
        raise ValueError(f"{table.name} has no columns {unknown}")
    rows = table_as_read(lake, table, ds).to_pyarrow_table(filters=[("ds", "=", ds)], columns=columns)
    if rows.num_rows == 0 and not allow_empty:
        raise ValueError(f"{table.name} has no rows for ds={ds} at {table.path(lake)}: run "
                         f"`recs {table.writer}` for ds={ds} first")
    return rows


def padded_lists(column: pa.ChunkedArray | pa.Array, width: int, fill: int = -1) -> np.ndarray:
    """array<long> column -> int64 matrix [rows, width]: the first `width` elements, then `fill`."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy().astype(np.int64)
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    row = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(len(flat)) - np.repeat(starts, lengths)
    keep = pos < width
    out = np.full((len(lengths), width), fill, dtype=np.int64)
    out[row[keep], pos[keep]] = flat[keep]
    return out


def timestamps_us(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamp column -> int64 microseconds since the epoch (UTC), whatever its unit/zone."""
    return pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
