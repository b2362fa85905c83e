"""Downstream SQL over the lake: `recs sql "<query>"` with every lake table under its SQL name.

Two engines, the same table names and the same example queries:
- `spark` (default): Spark SQL; each table that exists at the lake is registered in the session
  catalog as an external Delta table (`CREATE TABLE raw.items USING delta LOCATION ...`);
  `--ddl` prints those statements for `spark-sql -i`.
- `duckdb`: no JVM; `deltalake` exposes each table as an Arrow dataset and DuckDB queries it
  through a view in a schema of the same name, so `raw.items` means the same in both.

`EXAMPLES` is the one copy of the example queries: `docs/SQL.md` embeds them verbatim (a test
keeps the two equal) and the tests run each one on both engines against literal rows.

Read-only: the lake's tables are the pipeline's outputs, and a DELETE or INSERT here would change
what serving readers see without any step's validation. Each engine's own parser decides, before
anything runs, that the text is exactly one query (or a SHOW / DESCRIBE / EXPLAIN); anything else
is refused with `QueryRefused`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass

from contract import delta_reader
from contract.args import add_lake_arg, positive_int
from contract.tables import ALL_TABLES, Table


@dataclass(frozen=True)
class Example:
    title: str
    sql: str


# Portable SQL: every query runs unchanged on Spark SQL and DuckDB (no engine-only functions;
# ROUND where a double is reported, so both engines print the same figures). The one bridge:
# DuckDB names Spark's `explode` (one row per array element) `unnest`, so duckdb_connect defines
# `explode` as a macro over it.
EXAMPLES = {
    "user_top_10": Example(
        "A user's top 10 for one run date, with titles",
        """\
SELECT t.rank, t.item_id, i.title, ROUND(t.score, 4) AS score, t.model_version
FROM recs.top_k AS t
JOIN raw.items AS i ON i.item_id = t.item_id AND i.ds = t.ds
WHERE t.ds = '2026-11-22' AND t.user_id = 1 AND t.rank <= 10
ORDER BY t.rank"""),
    "score_distribution": Example(
        "Score distribution per model version (one run date)",
        """\
SELECT model_version,
       COUNT(*) AS pairs,
       ROUND(MIN(score), 4) AS min_score,
       ROUND(AVG(score), 4) AS mean_score,
       ROUND(MAX(score), 4) AS max_score,
       SUM(CASE WHEN score >= 0.5 THEN 1 ELSE 0 END) AS pairs_scoring_at_least_half
FROM recs.scores
WHERE ds = '2026-11-22'
GROUP BY model_version
ORDER BY model_version"""),
    "catalogue_coverage": Example(
        "Catalogue coverage per run date: share of the catalogue in anyone's top-k",
        """\
WITH recommended AS (
  SELECT ds, COUNT(DISTINCT item_id) AS recommended_items FROM recs.top_k GROUP BY ds
), catalogue AS (
  SELECT ds, COUNT(*) AS catalogue_items FROM raw.items GROUP BY ds
)
SELECT r.ds, r.recommended_items, c.catalogue_items,
       ROUND(r.recommended_items / c.catalogue_items, 4) AS coverage
FROM recommended AS r
JOIN catalogue AS c ON c.ds = r.ds
ORDER BY r.ds"""),
    "changes_between_runs": Example(
        "What changed between two run dates: items that entered or left each user's top-k",
        """\
WITH earlier AS (SELECT user_id, item_id FROM recs.top_k WHERE ds = '2026-11-21'),
     later AS (SELECT user_id, item_id FROM recs.top_k WHERE ds = '2026-11-22')
SELECT COALESCE(l.user_id, e.user_id) AS user_id,
       COALESCE(l.item_id, e.item_id) AS item_id,
       CASE WHEN e.item_id IS NULL THEN 'added' ELSE 'removed' END AS change
FROM earlier AS e
FULL OUTER JOIN later AS l ON l.user_id = e.user_id AND l.item_id = e.item_id
WHERE l.item_id IS NULL OR e.item_id IS NULL
ORDER BY user_id, change, item_id"""),
    "never_recommended": Example(
        "Items in the latest catalogue never recommended to anyone on any run date",
        """\
SELECT i.item_id, i.title
FROM raw.items AS i
WHERE i.ds = (SELECT MAX(ds) FROM raw.items)
  AND NOT EXISTS (SELECT 1 FROM recs.top_k AS t WHERE t.item_id = i.item_id)
ORDER BY i.item_id"""),
    "why_recommended": Example(
        "Why an item was recommended to a user: the history items behind its score, with titles",
        """\
SELECT e.rank, r.title AS recommended, ROUND(e.score, 4) AS score,
       h.item_id AS history_item_id, h.title AS history_title,
       ROUND(e.b.contribution, 4) AS contribution
FROM (SELECT t.ds, t.rank, t.item_id, t.score, explode(t.because) AS b
      FROM recs.top_k AS t
      WHERE t.ds = '2026-11-22' AND t.user_id = 1 AND t.item_id = 3) AS e
JOIN raw.items AS r ON r.item_id = e.item_id AND r.ds = e.ds
JOIN raw.items AS h ON h.item_id = e.b.item_id AND h.ds = e.ds
ORDER BY contribution DESC"""),
    "metric_history": Example(
        "Metric history: NDCG@10 per run date and model, with the change since the previous run",
        """\
SELECT ds, model, model_version, ROUND(value, 4) AS ndcg_at_10,
       ROUND(value - LAG(value) OVER (PARTITION BY model ORDER BY ds), 4) AS change
FROM recs.eval_metrics
WHERE metric = 'ndcg@10'
ORDER BY model, ds"""),
}


class QueryRefused(ValueError):
    """The text is not one read-only query: `recs sql` never changes the lake."""


READ_ONLY = ("recs sql is read-only: it runs one query (SELECT, WITH ... SELECT, VALUES) or one "
             "SHOW, DESCRIBE or EXPLAIN")


def existing_tables(lake: str) -> list[Table]:
    """Contract tables that exist as Delta tables at the lake."""
    return [t for t in ALL_TABLES if delta_reader.delta_table(lake, t, missing_ok=True)]


# ---------------------------------------------------------------------------------------------
# Spark SQL


def catalog_dir() -> str:
    """Where Spark's catalog may create database directories: never the working directory.

    Our tables are external (their data stays at the lake), so this only ever holds empty
    `<database>.db` folders; a temp dir keeps them out of the repository.
    """
    return os.path.join(tempfile.gettempdir(), "recs-spark-warehouse")


def spark_ddl(lake: str) -> list[str]:
    """The statements that register every existing lake table under its SQL name.

    `recs sql --ddl` prints them for `spark-sql -i`, so the CLI and `recs sql` see one catalog.
    """
    tables = existing_tables(lake)
    databases = dict.fromkeys(t.name.split(".")[0] for t in tables)
    return ([f"CREATE DATABASE IF NOT EXISTS {database} "
             f"LOCATION '{os.path.join(catalog_dir(), database + '.db')}'"
             for database in databases]
            + [f"CREATE TABLE IF NOT EXISTS {t.name} USING delta LOCATION '{t.path(lake)}'"
               for t in tables])


def register_spark_tables(spark, lake: str) -> list[str]:
    """Register every existing lake table under its SQL name; returns the names registered."""
    names = [t.name for t in existing_tables(lake)]
    for name in names:
        if spark.catalog.tableExists(name):
            # Re-pointing keeps a long-lived session right when it queries another lake; a
            # managed table of that name holds its own data, so it is never dropped for ours.
            if spark.catalog.getTable(name).tableType != "EXTERNAL":
                raise RuntimeError(f"{name} already exists in the Spark catalog as a managed "
                                   "table; refusing to replace it")
            spark.sql(f"DROP TABLE {name}")
    for statement in spark_ddl(lake):
        spark.sql(statement)
    return names


# Statements besides queries whose Spark plan only reads: catalog listings, descriptions, Delta's
# history and detail, and EXPLAIN (it plans its statement and never runs it).
SPARK_READ_ONLY_STATEMENTS = frozenset({
    "ShowTables", "ShowNamespacesCommand", "ShowColumns", "ShowViews", "ShowFunctions",
    "ShowTableProperties", "ShowPartitions", "ShowCreateTable", "ShowCatalogsCommand",
    "ShowCurrentNamespaceCommand", "DescribeRelation", "DescribeColumn", "DescribeNamespace",
    "DescribeFunction", "DescribeQueryCommand", "DescribeDeltaHistory",
    "DescribeDeltaDetailCommand", "ExplainCommand",
})


def require_read_only_spark(spark, query: str) -> None:
    """Raise QueryRefused unless `query` is one statement that only reads, by Spark's parser."""
    from pyspark.errors import ParseException

    parser = spark._jsparkSession.sessionState().sqlParser()
    try:
        plan = parser.parsePlan(query)
    except ParseException as error:
        # Also what several statements give ("SELECT 1; DELETE ..."): one statement per call.
        raise QueryRefused(f"not one SQL statement ({READ_ONLY}): "
                           f"{str(error).strip().splitlines()[0]}") from None
    kind = plan.getClass().getSimpleName()
    if kind in SPARK_READ_ONLY_STATEMENTS:
        return
    try:
        # The grammar's `query` rule alone: SELECT, WITH ... SELECT, VALUES, TABLE t, FROM t
        # SELECT; never DML, not even after WITH. A trailing `;` ends a statement, not a query.
        parser.parseQuery(re.sub(r"[\s;]+$", "", query))
    except ParseException:
        raise QueryRefused(f"{READ_ONLY}; refused a {kind} statement") from None


def run_spark(spark, lake: str, query: str):
    """The query's result as a Spark DataFrame, with the lake registered; QueryRefused unless
    the query only reads."""
    require_read_only_spark(spark, query)
    register_spark_tables(spark, lake)
    return spark.sql(query)


# ---------------------------------------------------------------------------------------------
# DuckDB (JVM-free)


def duckdb_connect(lake: str):
    """A DuckDB connection where every existing lake table is a view under its SQL name."""
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE MACRO explode(list) AS unnest(list)")  # Spark's name, see EXAMPLES
    for table in existing_tables(lake):
        database, name = table.name.split(".")
        arrow_name = f"{database}__{name}_arrow"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {database}")
        # A dataset, not a table: DuckDB pushes filters (e.g. on ds) into the Parquet scan.
        con.register(arrow_name, delta_reader.dataset(lake, table))
        con.execute(f"CREATE VIEW {table.name} AS SELECT * FROM {arrow_name}")
    return con


def require_read_only_duckdb(con, query: str) -> None:
    """Raise QueryRefused unless `query` is one statement that only reads, by DuckDB's parser."""
    statements = con.extract_statements(query)
    if len(statements) != 1:
        raise QueryRefused(f"{READ_ONLY}; refused {len(statements)} statements")
    kind = statements[0].type.name
    if kind == "EXPLAIN":
        # EXPLAIN ANALYZE runs its statement: what it explains must be a query too.
        explained = re.sub(r"^\s*EXPLAIN\s+(ANALY[SZ]E\s+)?", "", query, flags=re.IGNORECASE)
        kinds = [s.type.name for s in con.extract_statements(explained)]
        kind = "EXPLAIN " + kinds[0] if kinds != ["SELECT"] else "SELECT"
    if kind != "SELECT":  # DuckDB parses SHOW, DESCRIBE, SUMMARIZE and VALUES as SELECT
        raise QueryRefused(f"{READ_ONLY}; refused a {kind} statement")


def run_duckdb(lake: str, query: str):
    """The query's result as a DuckDB relation; QueryRefused unless the query only reads."""
    con = duckdb_connect(lake)
    require_read_only_duckdb(con, query)
    return con.sql(query)


# ---------------------------------------------------------------------------------------------
# Command line


def examples_markdown() -> str:
    """The examples as `docs/SQL.md` embeds them."""
    blocks = [f"### `{name}`: {example.title}\n\n```sql\n{example.sql}\n```\n"
              for name, example in EXAMPLES.items()]
    return "\n".join(blocks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recs sql",
        description="Run one read-only SQL query over the lake with every existing table "
                    "registered under its name (raw.items, features.user_history, recs.top_k, "
                    "...). Only queries (SELECT, WITH ... SELECT, VALUES) and SHOW, DESCRIBE and "
                    "EXPLAIN run: anything that could change the lake is refused.",
        epilog="Examples: recs sql \"SELECT ds, COUNT(*) FROM raw.interactions GROUP BY ds\"; "
               "recs sql --example user_top_10 --engine duckdb; recs sql --list-examples; "
               "recs sql --ddl > lake.sql && spark-sql ... -i lake.sql (docs/SQL.md).")
    parser.add_argument("query", nargs="?",
                        help="The SQL query (quote it). Omit with --example or --list-examples.")
    parser.add_argument("--example", choices=sorted(EXAMPLES),
                        help="Run one of the documented example queries instead of QUERY.")
    parser.add_argument("--list-examples", action="store_true",
                        help="Print the example queries (as docs/SQL.md shows them) and exit.")
    parser.add_argument("--ddl", action="store_true",
                        help="Print the statements that register the lake's existing tables, "
                             "for `spark-sql -i FILE`, and exit.")
    add_lake_arg(parser)
    parser.add_argument("--engine", choices=["spark", "duckdb"], default="spark",
                        help="spark: Spark SQL dialect, local Spark session; duckdb: DuckDB "
                             "dialect over Arrow, no JVM, starts in a second (default: "
                             "%(default)s).")
    parser.add_argument("--max-rows", type=positive_int, default=100,
                        help="Rows printed at most (default: %(default)s).")
    parser.add_argument("--master", default=None,
                        help="Spark master for --engine spark (default: local[*]).")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_examples:
        print(examples_markdown(), end="")
        return
    if args.ddl:
        print("".join(f"{statement};\n" for statement in spark_ddl(args.lake)), end="")
        return
    if (args.query is None) == (args.example is None):
        parser.error("give exactly one of QUERY or --example")
    query = args.query if args.example is None else EXAMPLES[args.example].sql

    if args.engine == "duckdb":
        run_duckdb(args.lake, query).show(max_rows=args.max_rows)
        return
    _keep_catalog_out_of_cwd()
    from jobs.core.spark import get_spark

    spark = get_spark("recs-sql", args.master, ui=False)
    run_spark(spark, args.lake, query).show(args.max_rows, truncate=False)


def _keep_catalog_out_of_cwd() -> None:
    # The session's default database would otherwise create ./spark-warehouse wherever `recs sql`
    # runs; the warehouse dir is a static setting, so it must be in place before the session.
    extra = os.environ.get("RECS_SPARK_CONF", "")
    if "spark.sql.warehouse.dir" not in extra:
        os.environ["RECS_SPARK_CONF"] = ",".join(
            filter(None, [extra, f"spark.sql.warehouse.dir={catalog_dir()}"]))


if __name__ == "__main__":
    main(sys.argv[1:])
