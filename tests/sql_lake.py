"""A small literal lake for `recs sql`: recs.* rows written with `deltalake` (no JVM), and the
exact rows every documented example query must give on it, on Spark SQL and on DuckDB alike.

tests/unit/test_sql.py runs the examples on DuckDB, tests/spark/test_sql.py on Spark SQL; the
`literal_lake` fixture (tests/conftest.py) writes this lake once per test module.
"""

import math
import os

import pyarrow as pa

D1, D2 = "2026-11-21", "2026-11-22"
TITLES = {1: "Alpha", 2: "Bravo", 3: "Charlie", 4: "Delta", 5: "Echo", 6: "Foxtrot"}

# (ds, user_id, rank, item_id, score, model_version, because): D1 was scored before `because`
# existed (null); on D2 user 1's history is items 1, 4 and 6, user 2's items 3 and 5.
TOP_K = [
    (D1, 1, 1, 2, 0.9, "v1", None), (D1, 1, 2, 1, 0.8, "v1", None),
    (D1, 1, 3, 3, 0.7, "v1", None), (D1, 2, 1, 1, 0.6, "v1", None),
    (D1, 2, 2, 2, 0.5, "v1", None),
    (D2, 1, 1, 3, 0.95, "v2", [(4, 0.5), (1, 0.3)]), (D2, 1, 2, 2, 0.85, "v2", [(6, 0.4)]),
    (D2, 1, 3, 5, 0.75, "v2", []),
    (D2, 2, 1, 2, 0.65, "v2", [(3, 0.35), (5, 0.2)]), (D2, 2, 2, 1, 0.55, "v2", [(5, 0.3)]),
]
# (ds, user_id, item_id, score, model_version): D2 is scored by v2 and, in shadow, by v1.
SCORES = [
    (D1, 1, 4, 0.9, "v1"), (D1, 2, 4, 0.1, "v1"),
    *[(D2, u, i, s, "v2") for u, i, s in
      [(1, 3, 0.95), (1, 2, 0.85), (1, 5, 0.75), (2, 2, 0.65), (2, 1, 0.55), (2, 6, 0.2)]],
    *[(D2, u, i, s, "v1") for u, i, s in [(1, 3, 0.4), (1, 2, 0.6), (2, 1, 0.3)]],
]
# (ds, model_version, model, metric, value); the interval and `note` (only for metric `absent`)
# are null throughout.
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
    "why_recommended": [(1, "Charlie", 0.95, 4, "Delta", 0.5),
                        (1, "Charlie", 0.95, 1, "Alpha", 0.3)],
    "metric_history": [(D1, "popularity", "v1", 0.2, None), (D2, "popularity", "v2", 0.21, 0.01),
                       (D1, "student", "v1", 0.3, None), (D2, "student", "v2", 0.35, 0.05)],
}


def write_table(lake, name, columns, rows):
    from deltalake import write_deltalake

    names = [c for c, _ in columns]
    schema = pa.schema(columns)
    data = pa.Table.from_pylist([dict(zip(names, r)) for r in rows], schema=schema)
    write_deltalake(f"{lake}/{name.replace('.', '/')}", data, partition_by=["ds"])


def write_literal_lake(lake: str) -> str:
    items = [(ds, i, t, ["Drama"], [], f"{t}. Drama", None) for ds, ids in ((D1, range(1, 5)),
                                                                      (D2, range(1, 7)))
             for i, t in TITLES.items() if i in ids]
    write_table(lake, "raw.items", [("ds", pa.string()), ("item_id", pa.int64()),
                                    ("title", pa.string()), ("genres", pa.list_(pa.string())),
                                    ("tags", pa.list_(pa.string())), ("text", pa.string()),
                                    ("description", pa.string())],
                items)
    because = pa.list_(pa.struct([("item_id", pa.int64()), ("contribution", pa.float64())]))
    write_table(lake, "recs.top_k", [("ds", pa.string()), ("user_id", pa.int64()),
                                     ("rank", pa.int32()), ("item_id", pa.int64()),
                                     ("score", pa.float64()), ("model_version", pa.string()),
                                     ("because", because)],
                [(*row[:-1], None if row[-1] is None else
                  [{"item_id": i, "contribution": c} for i, c in row[-1]]) for row in TOP_K])
    write_table(lake, "recs.scores", [("ds", pa.string()), ("user_id", pa.int64()),
                                      ("item_id", pa.int64()), ("score", pa.float64()),
                                      ("model_version", pa.string())], SCORES)
    write_table(lake, "recs.eval_metrics", [("ds", pa.string()), ("model_version", pa.string()),
                                            ("model", pa.string()), ("metric", pa.string()),
                                            ("value", pa.float64()), ("ci_low", pa.float64()),
                                            ("ci_high", pa.float64()), ("note", pa.string())],
                [(*row, None, None, None) for row in METRICS])
    return lake


def normalized(rows):
    """Rows as plain tuples with doubles rounded, so both engines compare exactly."""
    def value(v):
        return round(v, 4) if isinstance(v, float) and not math.isnan(v) else v
    return [tuple(value(v) for v in row) for row in rows]


def lake_files(lake: str) -> dict[str, tuple[int, int]]:
    """Every file under the lake, with its size and modification time: equal before and after a
    statement exactly when the statement changed nothing in the lake."""
    found = {}
    for folder, _, names in os.walk(lake):
        for name in names:
            stat = os.stat(os.path.join(folder, name))
            found[os.path.relpath(os.path.join(folder, name), lake)] = (stat.st_size,
                                                                       stat.st_mtime_ns)
    return found
