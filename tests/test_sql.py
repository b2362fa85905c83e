"""`recs sql` and the documented example queries, on a small literal lake, through both engines.

The recs.* rows are literals written with `deltalake` (the jobs that write them are tested on
their own); every example query is asserted to give exactly the expected rows on Spark SQL and
on DuckDB, so the two documented paths cannot disagree.
"""

import math

import pyarrow as pa
import pytest

from jobs.ops import sql
from tests.conftest import REPO

D1, D2 = "2026-11-21", "2026-11-22"
TITLES = {1: "Alpha", 2: "Bravo", 3: "Charlie", 4: "Delta", 5: "Echo", 6: "Foxtrot"}

# (ds, user_id, rank, item_id, score, model_version)
TOP_K = [
    (D1, 1, 1, 2, 0.9, "v1"), (D1, 1, 2, 1, 0.8, "v1"), (D1, 1, 3, 3, 0.7, "v1"),
    (D1, 2, 1, 1, 0.6, "v1"), (D1, 2, 2, 2, 0.5, "v1"),
    (D2, 1, 1, 3, 0.95, "v2"), (D2, 1, 2, 2, 0.85, "v2"), (D2, 1, 3, 5, 0.75, "v2"),
    (D2, 2, 1, 2, 0.65, "v2"), (D2, 2, 2, 1, 0.55, "v2"),
]
# (ds, user_id, item_id, score, model_version): D2 is scored by v2 and, in shadow, by v1.
SCORES = [
    (D1, 1, 4, 0.9, "v1"), (D1, 2, 4, 0.1, "v1"),
    *[(D2, u, i, s, "v2") for u, i, s in
      [(1, 3, 0.95), (1, 2, 0.85), (1, 5, 0.75), (2, 2, 0.65), (2, 1, 0.55), (2, 6, 0.2)]],
    *[(D2, u, i, s, "v1") for u, i, s in [(1, 3, 0.4), (1, 2, 0.6), (2, 1, 0.3)]],
]
# (ds, model_version, model, metric, value)
METRICS = [
    (D1, "v1", "student", "ndcg@10", 0.30), (D1, "v1", "popularity", "ndcg@10", 0.20),
    (D1, "v1", "student", "recall@20", 0.50),
    (D2, "v2", "student", "ndcg@10", 0.35), (D2, "v2", "popularity", "ndcg@10", 0.21),
]

EXPECTED = {
    "user_top_10": [(1, 3, "Charlie", 0.95, "v2"), (2, 2, "Bravo", 0.85, "v2"),
                    (3, 5, "Echo", 0.75, "v2")],
    "score_distribution": [("v1", 3, 0.3, 0.4333, 0.6, 1), ("v2", 6, 0.2, 0.6583, 0.95, 5)],
    "catalogue_coverage": [(D1, 3, 4, 0.75), (D2, 4, 6, 0.6667)],
    "changes_between_runs": [(1, 5, "added"), (1, 1, "removed")],
    "never_recommended": [(4, "Delta"), (6, "Foxtrot")],
    "metric_history": [(D1, "popularity", "v1", 0.2, None), (D2, "popularity", "v2", 0.21, 0.01),
                       (D1, "student", "v1", 0.3, None), (D2, "student", "v2", 0.35, 0.05)],
}


def write_table(lake, name, columns, rows):
    from deltalake import write_deltalake

    names = [c for c, _ in columns]
    schema = pa.schema(columns)
    data = pa.Table.from_pylist([dict(zip(names, r)) for r in rows], schema=schema)
    write_deltalake(f"{lake}/{name.replace('.', '/')}", data, partition_by=["ds"])


@pytest.fixture(scope="module")
def literal_lake(tmp_path_factory):
    lake = str(tmp_path_factory.mktemp("sql") / "lake")
    items = [(ds, i, t, ["Drama"], [], f"{t}. Drama") for ds, ids in ((D1, range(1, 5)),
                                                                      (D2, range(1, 7)))
             for i, t in TITLES.items() if i in ids]
    write_table(lake, "raw.items", [("ds", pa.string()), ("item_id", pa.int64()),
                                    ("title", pa.string()), ("genres", pa.list_(pa.string())),
                                    ("tags", pa.list_(pa.string())), ("text", pa.string())],
                items)
    write_table(lake, "recs.top_k", [("ds", pa.string()), ("user_id", pa.int64()),
                                     ("rank", pa.int32()), ("item_id", pa.int64()),
                                     ("score", pa.float64()), ("model_version", pa.string())],
                TOP_K)
    write_table(lake, "recs.scores", [("ds", pa.string()), ("user_id", pa.int64()),
                                      ("item_id", pa.int64()), ("score", pa.float64()),
                                      ("model_version", pa.string())], SCORES)
    write_table(lake, "recs.eval_metrics", [("ds", pa.string()), ("model_version", pa.string()),
                                            ("model", pa.string()), ("metric", pa.string()),
                                            ("value", pa.float64())], METRICS)
    return lake


def normalized(rows):
    """Rows as plain tuples with doubles rounded, so both engines compare exactly."""
    def value(v):
        return round(v, 4) if isinstance(v, float) and not math.isnan(v) else v
    return [tuple(value(v) for v in row) for row in rows]


def test_literal_tables_follow_the_registry(literal_lake):
    import deltalake

    from contract.tables import BY_NAME

    for name in ("raw.items", "recs.top_k", "recs.scores", "recs.eval_metrics"):
        written = deltalake.DeltaTable(BY_NAME[name].path(literal_lake))
        assert sorted(f.name for f in written.schema().fields) == sorted(BY_NAME[name].column_names)
        assert written.metadata().partition_columns == ["ds"]


def test_every_example_is_tested():
    assert set(EXPECTED) == set(sql.EXAMPLES) and len(sql.EXAMPLES) >= 6


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_on_duckdb(literal_lake, name):
    con = sql.duckdb_connect(literal_lake)
    assert normalized(con.sql(sql.EXAMPLES[name].sql).fetchall()) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_on_spark_sql(spark, literal_lake, name):
    rows = sql.run_spark(spark, literal_lake, sql.EXAMPLES[name].sql).collect()
    assert normalized(rows) == EXPECTED[name]


def test_only_existing_tables_are_registered_outside_the_repo(spark, literal_lake):
    names = sql.register_spark_tables(spark, literal_lake)
    assert names == ["raw.items", "recs.scores", "recs.top_k", "recs.eval_metrics"]
    assert spark.catalog.getTable("recs.top_k").tableType == "EXTERNAL"
    for database in ("raw", "recs"):
        location = spark.catalog.getDatabase(database).locationUri
        assert location.removeprefix("file:").startswith(sql.catalog_dir()), location


def test_cli_runs_a_query_and_an_example(literal_lake, capsys):
    sql.main(["--engine", "duckdb", "--lake", literal_lake,
              "SELECT COUNT(*) AS n FROM recs.top_k WHERE ds = '2026-11-22'"])
    assert "5" in capsys.readouterr().out
    sql.main(["--engine", "duckdb", "--lake", literal_lake, "--example", "never_recommended"])
    out = capsys.readouterr().out
    assert "Delta" in out and "Foxtrot" in out and "Echo" not in out


def test_cli_spark_engine(spark, literal_lake, capsys, monkeypatch):
    monkeypatch.delenv("RECS_SPARK_CONF", raising=False)
    sql.main(["--lake", literal_lake, "--example", "user_top_10"])
    out = capsys.readouterr().out
    assert "Charlie" in out and "Echo" in out and "Alpha" not in out


def test_cli_needs_exactly_one_query(capsys):
    with pytest.raises(SystemExit) as exit_info:
        sql.main(["SELECT 1", "--example", "user_top_10"])
    assert exit_info.value.code == 2
    assert "exactly one of QUERY or --example" in capsys.readouterr().err


def test_every_flag_has_help():
    assert [a.option_strings for a in sql.build_parser()._actions
            if a.option_strings and not a.help] == []


def test_docs_embed_the_examples_verbatim():
    doc = (REPO / "docs" / "SQL.md").read_text()
    assert sql.examples_markdown() in doc, (
        "docs/SQL.md is stale: paste `python -m jobs.ops.sql --list-examples` into it")


def test_ddl_registers_existing_tables_for_spark_sql(literal_lake, capsys):
    sql.main(["--ddl", "--lake", literal_lake])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"CREATE DATABASE IF NOT EXISTS {db} LOCATION "
                         f"'{sql.catalog_dir()}/{db}.db';" for db in ("raw", "recs")]
    assert lines[2] == (f"CREATE TABLE IF NOT EXISTS raw.items USING delta LOCATION "
                        f"'{literal_lake}/raw/items';")
    assert len(lines) == 6
