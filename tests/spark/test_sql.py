"""`recs sql` on Spark SQL: the documented example queries on tests/sql_lake.py's literal lake
give exactly the rows tests/unit/test_sql.py asserts on DuckDB, and the Spark catalog stays out of
the repository."""

import pytest

from jobs.ops import sql
from tests.sql_lake import EXPECTED, normalized


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
