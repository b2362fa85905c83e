"""`recs sql` on Spark SQL: the documented example queries on tests/sql_lake.py's literal lake
give exactly the rows tests/unit/test_sql.py asserts on DuckDB, the Spark catalog stays out of
the repository, and nothing but a read-only query runs."""

import pytest

from jobs.ops import sql
from tests.sql_lake import EXPECTED, lake_files, normalized, write_literal_lake


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


def test_cli_spark_engine(spark, literal_lake, capsys, monkeypatch):
    monkeypatch.delenv("RECS_SPARK_CONF", raising=False)
    sql.main(["--lake", literal_lake, "--example", "user_top_10"])
    assert capsys.readouterr().out.splitlines() == [
        "+----+-------+-------+-----+-------------+",
        "|rank|item_id|title  |score|model_version|",
        "+----+-------+-------+-----+-------------+",
        "|1   |3      |Charlie|0.95 |v2           |",
        "|2   |2      |Bravo  |0.85 |v2           |",
        "|3   |5      |Echo   |0.75 |v2           |",
        "+----+-------+-------+-----+-------------+",
        "",
    ]


# Each would change the lake (or its catalog) on Spark SQL; {lake} is the lake root.
SPARK_WRITES = {
    "delete": "DELETE FROM recs.top_k WHERE ds = '2026-11-22'",
    "insert": "INSERT INTO recs.top_k SELECT * FROM recs.top_k",
    "insert_after_with": "WITH s AS (SELECT * FROM recs.top_k) INSERT INTO recs.top_k "
                         "SELECT * FROM s",
    "update": "UPDATE recs.top_k SET score = 0",
    "merge": "MERGE INTO recs.top_k AS t USING recs.scores AS s "
             "ON t.user_id = s.user_id AND t.item_id = s.item_id WHEN MATCHED THEN DELETE",
    "drop": "DROP TABLE recs.top_k",
    "create": "CREATE TABLE recs.copy USING delta LOCATION '{lake}/recs/copy' "
              "AS SELECT * FROM recs.top_k",
    "several_statements": "SELECT 1; DELETE FROM recs.top_k",
}


@pytest.fixture
def fresh_lake(tmp_path):
    """A literal lake of the test's own: a statement that got through cannot spoil the others."""
    return write_literal_lake(str(tmp_path / "lake"))


@pytest.mark.parametrize("name", sorted(SPARK_WRITES))
def test_spark_refuses_anything_that_could_write(spark, fresh_lake, name):
    before = lake_files(fresh_lake)
    with pytest.raises(sql.QueryRefused, match="recs sql is read-only"):
        sql.run_spark(spark, fresh_lake, SPARK_WRITES[name].format(lake=fresh_lake))
    assert lake_files(fresh_lake) == before
    assert sql.run_spark(spark, fresh_lake, "SELECT COUNT(*) FROM recs.top_k").first()[0] == 10


def test_spark_runs_read_only_statements(spark, literal_lake):
    def first_column(query):
        return [row[0] for row in sql.run_spark(spark, literal_lake, query).collect()]

    assert first_column("SELECT COUNT(*) FROM recs.top_k WHERE ds = '2026-11-22';") == [5]
    assert first_column("VALUES (1), (2)") == [1, 2]
    assert "recs" in first_column("SHOW DATABASES")
    assert "rank" in first_column("DESCRIBE recs.top_k")
    assert first_column("DESCRIBE HISTORY recs.top_k")[0] == 0  # version 0: the literal write
    assert "recs.top_k" in first_column("EXPLAIN SELECT * FROM recs.top_k")[0]
    # EXPLAIN plans its statement and never runs it.
    before = lake_files(literal_lake)
    first_column("EXPLAIN DELETE FROM recs.top_k")
    assert lake_files(literal_lake) == before


def test_cli_refusal_is_one_line(spark, literal_lake, monkeypatch):
    from jobs.ops import cli

    monkeypatch.delenv("RECS_SPARK_CONF", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sql", "--lake", literal_lake, "DELETE FROM raw.items"])
    assert str(exit_info.value.code) == (
        "recs sql: error: recs sql is read-only: it runs one query (SELECT, WITH ... SELECT, "
        "VALUES) or one SHOW, DESCRIBE or EXPLAIN; refused a DeleteFromTable statement")
