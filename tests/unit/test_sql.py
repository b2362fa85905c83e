"""`recs sql` and the documented example queries on a small literal lake, through DuckDB (no JVM).

The recs.* rows are literals written with `deltalake` (tests/sql_lake.py; the jobs that write
them are tested on their own); every example query is asserted to give exactly the expected rows
here on DuckDB and in tests/spark/test_sql.py on Spark SQL, so the two documented paths cannot
disagree.
"""

import pytest

from jobs.ops import sql
from tests.conftest import REPO
from tests.sql_lake import EXPECTED, normalized


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
