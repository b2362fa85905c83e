"""`recs sql` and the documented example queries on a small literal lake, through DuckDB (no JVM).

The recs.* rows are literals written with `deltalake` (tests/sql_lake.py; the jobs that write
them are tested on their own); every example query is asserted to give exactly the expected rows
here on DuckDB and in tests/spark/test_sql.py on Spark SQL, so the two documented paths cannot
disagree.
"""

import pytest

from jobs.ops import sql
from tests.conftest import REPO
from tests.sql_lake import EXPECTED, lake_files, normalized, write_literal_lake


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


def test_cli_runs_a_query_and_an_example(literal_lake, capsys):
    sql.main(["--engine", "duckdb", "--lake", literal_lake,
              "SELECT COUNT(*) AS n FROM recs.top_k WHERE ds = '2026-11-22'"])
    assert capsys.readouterr().out.splitlines() == [
        "┌───────┐",
        "│   n   │",
        "│ int64 │",
        "├───────┤",
        "│     5 │",
        "└───────┘",
        "",
    ]
    sql.main(["--engine", "duckdb", "--lake", literal_lake, "--example", "never_recommended"])
    assert capsys.readouterr().out.splitlines() == [
        "┌─────────┬─────────┐",
        "│ item_id │  title  │",
        "│  int64  │ varchar │",
        "├─────────┼─────────┤",
        "│       4 │ Delta   │",
        "│       6 │ Foxtrot │",
        "└─────────┴─────────┘",
        "",
    ]


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
    assert lines == [
        *(f"CREATE DATABASE IF NOT EXISTS {db} LOCATION '{sql.catalog_dir()}/{db}.db';"
          for db in ("raw", "recs")),
        *(f"CREATE TABLE IF NOT EXISTS {name} USING delta LOCATION '{literal_lake}/{path}';"
          for name, path in (("raw.items", "raw/items"), ("recs.scores", "recs/scores"),
                             ("recs.top_k", "recs/top_k"),
                             ("recs.eval_metrics", "recs/eval_metrics"))),
    ]


# Each would change the lake, or DuckDB's view of it, were it run; {lake} is the lake root.
DUCKDB_WRITES = {
    "delete": "DELETE FROM recs.top_k WHERE ds = '2026-11-22'",
    "insert": "INSERT INTO recs.top_k SELECT * FROM recs.top_k",
    "update": "UPDATE recs.top_k SET score = 0",
    "merge": "MERGE INTO recs.top_k AS t USING recs.scores AS s "
             "ON t.user_id = s.user_id AND t.item_id = s.item_id WHEN MATCHED THEN DELETE",
    "drop": "DROP VIEW recs.top_k",
    "create": "CREATE TABLE recs.copy AS SELECT * FROM recs.top_k",
    "several_statements": "SELECT 1; DELETE FROM recs.top_k",
    "copy_into_the_lake": "COPY (SELECT * FROM recs.top_k) TO '{lake}/recs/top_k/stray.parquet'",
    "explain_analyze_copy": "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{lake}/raw/items/x.parquet'",
}


@pytest.mark.parametrize("name", sorted(DUCKDB_WRITES))
def test_duckdb_refuses_anything_that_could_write(tmp_path, name):
    lake = write_literal_lake(str(tmp_path / "lake"))
    before = lake_files(lake)
    with pytest.raises(sql.QueryRefused, match="recs sql is read-only"):
        sql.main(["--engine", "duckdb", "--lake", lake, DUCKDB_WRITES[name].format(lake=lake)])
    assert lake_files(lake) == before


@pytest.mark.parametrize("query", ["SHOW TABLES", "DESCRIBE recs.top_k", "SUMMARIZE recs.scores",
                                   "EXPLAIN SELECT * FROM recs.top_k", "VALUES (1)",
                                   "WITH t AS (SELECT 1 AS a) SELECT a FROM t;"])
def test_duckdb_runs_read_only_statements(literal_lake, query):
    assert sql.run_duckdb(literal_lake, query).fetchall()
