"""One ingest of one ds is all-or-nothing for every reader (contract/ingest_runs.py).

A run is stopped right after its n-th Delta commit by ingest's `after_commit` hook raising. That
leaves the lake exactly as a killed process would: each commit is durable once made, and the run
writes nothing to the lake between two commits but the next commit.
"""

import deltalake
import pytest

from contract import delta_reader
from contract.ingest_runs import INGESTED, NotCommitted
from contract.tables import RAW_INGEST_RUNS, RAW_INTERACTIONS, RAW_ITEMS, RAW_QUARANTINE, RAW_TAGS
from jobs import ingest
from jobs.core.delta import read_ingested, read_partition
from jobs.ops import quality
from tests.conftest import write

DS = "2026-11-22"
COLUMNS = {RAW_INTERACTIONS: ["user_id", "item_id", "rating"], RAW_ITEMS: ["item_id", "title"],
           RAW_TAGS: ["user_id", "item_id", "tag"], RAW_QUARANTINE: ["source_table", "reason"]}
FIRST = {  # what readers see of the first source, below
    "raw.interactions": [(1, 10, 4.0), (2, 10, 5.0), (2, 20, 3.0)],
    "raw.items": [(10, "Heat (1995)"), (20, "Nixon (1995)")],
    "raw.tags": [(1, 10, "heist")],
    "raw.quarantine": [("interactions", "invalid_user_id")],
}
SECOND = {  # of the second: every table differs from the first
    "raw.interactions": [(1, 30, 2.0), (3, 30, 4.0), (3, 40, 5.0), (4, 40, 1.0)],
    "raw.items": [(30, "Alien (1979)"), (40, "Up (2009)")],
    "raw.tags": [(3, 30, "scary"), (4, 40, "balloons")],
    "raw.quarantine": [("interactions", "unknown_item"), ("items", "invalid_item_id")],
}
RAW_WITH_MARKER = [*(t.name for t in INGESTED), RAW_INGEST_RUNS.name]


class Killed(Exception):
    pass


def movielens(root, ratings, movies, tags):
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n" + ratings)
    write(root / "movies.csv", "movieId,title,genres\n" + movies)
    write(root / "tags.csv", "userId,movieId,tag,timestamp\n" + tags)
    return str(root)


@pytest.fixture
def sources(tmp_path):
    first = movielens(tmp_path / "first",
                      "1,10,4.0,964982703\n2,10,5.0,964983815\n2,20,3.0,964982931\n"
                      "x,10,1.0,964982931\n",
                      "10,Heat (1995),Action\n20,Nixon (1995),Drama\n",
                      "1,10,heist,1445714994\n")
    second = movielens(tmp_path / "second",
                       "1,30,2.0,964982703\n3,30,4.0,964983815\n3,40,5.0,964982931\n"
                       "4,40,1.0,964982931\n1,99,4.0,964982931\n",
                       "30,Alien (1979),Horror\n40,Up (2009),Animation\nzz,Bad,Drama\n",
                       "3,30,scary,1445714994\n4,40,balloons,1445714996\n")
    return first, second


def run_ingest(spark, lake, path, after_commit=lambda table_name: None):
    args = ingest.build_parser().parse_args(["--lake", lake, "--ds", DS, "--source", "movielens",
                                             "--path", path])
    return ingest.run(spark, args, after_commit)


def killed_after(spark, lake, path, n):
    """Run ingest, stopped right after its n-th commit; the commits made, in order."""
    commits = []

    def after_commit(table_name):
        commits.append(table_name)
        if len(commits) == n:
            raise Killed(table_name)

    with pytest.raises(Killed):
        run_ingest(spark, lake, path, after_commit)
    return commits


def spark_view(spark, lake):
    """Every raw table of DS as Spark readers see it, read together as build-training-set does."""
    frames = read_ingested(spark, lake, DS, INGESTED)
    return {t.name: sorted(tuple(r) for r in df.select(*COLUMNS[t]).collect())
            for t, df in zip(INGESTED, frames)}


def arrow_view(lake):
    """The same through the JVM-free reader."""
    return {t.name: sorted(tuple(r.values()) for r in delta_reader.read_partition(
                lake, t, DS, COLUMNS[t], allow_empty=True).to_pylist())
            for t in INGESTED}


def latest_items(spark, lake):
    """raw.items of DS at the table's latest version, the ingest commit marker ignored."""
    rows = spark.read.format("delta").load(RAW_ITEMS.path(lake)).where(f"ds = '{DS}'")
    return sorted(r.item_id for r in rows.collect())


def versions(lake):
    return {t.name: deltalake.DeltaTable(t.path(lake)).version()
            for t in (*INGESTED, RAW_INGEST_RUNS)}


def test_a_reingest_stopped_after_any_commit_leaves_the_previous_run_whole(spark, lake, sources):
    first, second = sources
    run_ingest(spark, lake, first)
    assert spark_view(spark, lake) == arrow_view(lake) == FIRST

    for n in range(1, 6):  # after the pending marker, then after each of the four tables
        assert killed_after(spark, lake, second, n) == [RAW_INGEST_RUNS.name,
                                                        *RAW_WITH_MARKER[:n - 1]]
        assert spark_view(spark, lake) == arrow_view(lake) == FIRST, f"stopped after commit {n}"
        assert quality.problems(lake, DS, 0.5, ["raw.interactions", "raw.items"]) == []
        if n >= 2:  # underneath, raw.items already holds the second source's rows
            assert latest_items(spark, lake) == [30, 40]
    items = read_partition(spark, lake, RAW_ITEMS, DS)  # one table alone, too
    assert sorted(r.item_id for r in items.collect()) == [10, 20]

    done = []  # the rerun repairs it
    counts = run_ingest(spark, lake, second, done.append)

    assert done == [RAW_INGEST_RUNS.name, *(t.name for t in INGESTED), RAW_INGEST_RUNS.name]
    assert spark_view(spark, lake) == arrow_view(lake) == SECOND
    assert counts["raw.items"] == 2 and counts["raw.interactions"] == 4
    assert quality.problems(lake, DS, 0.5, ["raw.interactions", "raw.items"]) == []
    run = delta_reader.ingest_run(lake, DS)
    assert run["pending_run_id"] is None and run["source"] == "movielens"
    assert sorted((e["source_table"], e["num_rows"]) for e in run["input_rows"]) == [
        ("interactions", 5), ("items", 3), ("tags", 2)]
    assert {e["name"]: e["num_rows"] for e in run["tables"]} == {
        name: len(rows) for name, rows in SECOND.items()}


def test_a_first_ingest_stopped_after_any_commit_is_refused_until_a_rerun(spark, lake, sources):
    first, _ = sources
    for n in (1, 4):  # after the first table, and after the last one, before the marker
        assert killed_after(spark, lake, first, n) == RAW_WITH_MARKER[:n]
        for table in INGESTED[:n]:
            with pytest.raises(NotCommitted, match=f"{table.name} has no committed ingest for "
                                                   f"ds={DS}"):
                read_partition(spark, lake, table, DS)
            with pytest.raises(NotCommitted, match=f"run `recs ingest` for ds={DS}"):
                delta_reader.read_partition(lake, table, DS, allow_empty=True)
        for table in INGESTED[n:]:  # not written yet
            with pytest.raises(FileNotFoundError, match=f"{table.name} does not exist"):
                read_partition(spark, lake, table, DS)
        assert quality.problems(lake, DS, 0.5, ["raw.interactions", "raw.items"])[0] == (
            f"raw.ingest_runs: no committed ingest for ds={DS}, so readers refuse its raw tables "
            f"(run `recs ingest` for ds={DS})")

    done = []
    run_ingest(spark, lake, first, done.append)

    assert done == RAW_WITH_MARKER
    assert spark_view(spark, lake) == arrow_view(lake) == FIRST
    assert quality.problems(lake, DS, 0.5, ["raw.interactions", "raw.items"]) == []


def test_a_timestamp_format_spark_cannot_parse_fails_before_the_first_commit(spark, lake,
                                                                             sources, tmp_path):
    """Items parse no timestamp: written first, they used to be committed before the failure."""
    first, _ = sources
    run_ingest(spark, lake, first)
    before = versions(lake)
    events = write(tmp_path / "events.csv", "user_id,item_id,timestamp\n7,100,2024-03-01\n")
    catalogue = write(tmp_path / "catalogue.csv", "item_id,title\n100,Red Kettle\n")
    args = ingest.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--source", "csv", "--path", events, "--items-path",
         catalogue, "--timestamp-format", "yyyy-qq-dd"])

    with pytest.raises(Exception, match="yyyy-qq-dd"):
        ingest.run(spark, args)

    assert versions(lake) == before
    assert spark_view(spark, lake) == arrow_view(lake) == FIRST
