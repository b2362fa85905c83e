"""`recs backfill` with real spark-submit processes: two dates, then an idempotent re-run."""

import os
import sys

from jobs.ops import backfill
from jobs.sources import synthetic
from tests.slow.conftest import SMALL_SPARK

D1, D2 = "2026-11-20", "2026-11-21"
USERS, ITEMS, INTERACTIONS = 20, 60, 8
TINY = ["--synthetic-users", str(USERS), "--synthetic-items", str(ITEMS),
        "--synthetic-interactions", str(INTERACTIONS)]


def snapshot(lake):
    """Every table's rows per ds (sorted), and its Delta version."""
    import deltalake

    tables = {}
    for database in sorted(os.listdir(lake)):
        for name in sorted(os.listdir(os.path.join(lake, database))):
            table = deltalake.DeltaTable(os.path.join(lake, database, name))
            frame = table.to_pandas()
            frame = frame.astype({c: str for c in frame.columns if frame[c].dtype == object})
            rows = frame.sort_values(list(frame.columns)).reset_index(drop=True)
            tables[f"{database}.{name}"] = (rows, table.version())
    return tables


def test_two_date_backfill_leaves_two_partitions_and_a_rerun_changes_nothing(lake, monkeypatch):
    """Real spark-submit processes. Ingest only: the loop, the gate and the replace-one-ds write
    are the same for every step, and the nightly DAG test already submits build-training-set;
    one more step here would double this test's minutes."""
    monkeypatch.setenv("RECS_SPARK_CONF", SMALL_SPARK)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    argv = ["--from", D1, "--to", D2, "--steps", "ingest", "--lake", lake, "--master", "local[2]",
            "--log-level", "WARNING", *TINY]

    assert backfill.main(argv) == [(D1, "ingest"), (D2, "ingest")]
    first = snapshot(lake)
    assert set(first) == {"raw.interactions", "raw.items", "raw.quarantine", "raw.tags",
                          "raw.ingest_runs"}
    # Each ds partition holds exactly what the (seeded) generator makes for that date.
    spec = synthetic.SyntheticSpec(num_users=USERS, num_items=ITEMS,
                                   mean_interactions_per_user=INTERACTIONS)
    generated = {ds: synthetic.generate(spec, ds) for ds in (D1, D2)}
    assert first["raw.interactions"][0].groupby("ds").size().to_dict() == {
        ds: len(events) for ds, (_, events) in generated.items()}
    assert first["raw.items"][0].groupby("ds").size().to_dict() == {D1: ITEMS, D2: ITEMS}
    assert first["raw.quarantine"][0].empty
    assert first["raw.tags"][0].empty  # the synthetic source has no tags

    backfill.main(argv)
    second = snapshot(lake)
    for table, (rows, version) in first.items():
        again, new_version = second[table]
        # An empty partition (raw.quarantine of clean data, raw.tags of a source without tags)
        # replaced by nothing commits nothing.
        assert new_version > version or rows.empty, f"{table} was not rewritten"
        if table == "raw.ingest_runs":  # a new run: its own id, time and table versions
            same = ["ds", "source", "input_rows", "pending_run_id"]
            again, rows = (r.sort_values("ds")[same].reset_index(drop=True) for r in (again, rows))
        assert again.equals(rows), f"{table} changed on re-run"
