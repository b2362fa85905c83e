"""Fixtures and helpers every folder shares, and the folder markers.

tests/unit starts no JVM (tests/unit/conftest.py enforces it), tests/spark shares the one
session-scoped local SparkSession below, tests/slow spawns spark-submit or Airflow processes.
Each test gets its folder's marker here, so `-m unit`, `-m "not slow"` and so on need no
decorator.
"""

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"
ML_LATEST_SMALL = SHARED_DATA / "ml-latest-small"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ["RECS_SPARK_UI"] = "0"

FOLDER_MARKERS = ("unit", "spark", "slow")


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(item.path)
        folder = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else None
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)


@pytest.fixture(scope="session")
def spark():
    from jobs.core.spark import get_spark

    session = get_spark("recs-tests", master="local[2]", ui=False)
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path):
    return str(tmp_path / "lake")


@pytest.fixture(scope="module")
def literal_lake(tmp_path_factory):
    """tests/sql_lake.py's literal lake, written with deltalake (no JVM)."""
    from tests.sql_lake import write_literal_lake

    return write_literal_lake(str(tmp_path_factory.mktemp("sql") / "lake"))


@pytest.fixture
def ml_latest_small():
    if not ML_LATEST_SMALL.is_dir():
        pytest.skip(f"needs MovieLens latest-small at {ML_LATEST_SMALL} (the shared data folder "
                    "beside the repository); absent here")
    return str(ML_LATEST_SMALL)


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return str(path)


def same_rows(before, after, key=("user_id", "item_id")) -> bool:
    """Two pandas frames of a table's partition hold the same rows, whatever the file order."""
    key = list(key)
    return before.sort_values(key).reset_index(drop=True).equals(
        after.sort_values(key).reset_index(drop=True))


def write_ingest_run(lake: str, row: dict) -> None:
    """Replace raw.ingest_runs' row for row["ds"] with `row` (deltalake, no JVM)."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from contract.tables import RAW_INGEST_RUNS

    path = RAW_INGEST_RUNS.path(lake)
    tables = pa.list_(pa.struct([("name", pa.string()), ("version", pa.int64()),
                                 ("num_rows", pa.int64())]))
    input_rows = pa.list_(pa.struct([("source_table", pa.string()), ("num_rows", pa.int64())]))
    schema = (DeltaTable(path).to_pyarrow_dataset().schema if DeltaTable.is_deltatable(path)
              else pa.schema([("run_id", pa.string()), ("source", pa.string()),
                              ("committed_at", pa.timestamp("us", tz="UTC")), ("tables", tables),
                              ("input_rows", input_rows), ("pending_run_id", pa.string()),
                              ("pending_since", pa.timestamp("us", tz="UTC")),
                              ("ds", pa.string())]))
    write_deltalake(path, pa.Table.from_pylist([row], schema=schema), partition_by=["ds"],
                    mode="overwrite", predicate=f"ds = '{row['ds']}'")


def mark_ingested(lake: str, ds: str) -> None:
    """Commit the `ds` rows the raw tables hold now, as ingest's last commit does: for tests that
    write raw tables themselves (deltalake, no JVM)."""
    import datetime as dt

    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from contract.ingest_runs import INGESTED, KEPT_IN
    from contract.tables import RAW_QUARANTINE

    tables, quarantined = [], {}
    for table in INGESTED:
        if DeltaTable.is_deltatable(table.path(lake)):
            found = DeltaTable(table.path(lake))
            rows = found.to_pyarrow_table(filters=[("ds", "=", ds)])
            tables.append({"name": table.name, "version": found.version(),
                           "num_rows": rows.num_rows})
            if table == RAW_QUARANTINE:
                quarantined = {c["values"]: c["counts"]
                               for c in pc.value_counts(rows["source_table"]).to_pylist()}
    kept = {entry["name"]: entry["num_rows"] for entry in tables}
    write_ingest_run(lake, {
        "run_id": "test-run", "source": "test", "committed_at": dt.datetime.now(dt.timezone.utc),
        "tables": tables,
        "input_rows": [{"source_table": source, "num_rows": kept.get(table.name, 0)
                        + quarantined.get(source, 0)} for source, table in KEPT_IN.items()],
        "pending_run_id": None, "pending_since": None, "ds": ds})


def small_scoring_lake(spark, lake: str, ds: str, users: int, items: int) -> str:
    """Synthetic raw tables and nightly-mode features (5-item histories, 1 negative) for ds."""
    from jobs import build_training_set, ingest

    ingest.run(spark, ingest.build_parser().parse_args(
        ["--lake", lake, "--ds", ds, "--synthetic-users", str(users), "--synthetic-items",
         str(items), "--synthetic-interactions", "6"]))
    build_training_set.run(spark, build_training_set.build_parser().parse_args(
        ["--lake", lake, "--ds", ds, "--history-length", "5", "--negatives", "1"]))
    return lake


def make_student(lake: str, version: str, known_items: list[int], seed: int,
                 valid_ndcg: float = 0.1) -> str:
    """A tiny random student artifact (8-dim towers, the synthetic genre words as vocabulary)."""
    import json

    import torch
    from transformers import BertTokenizerFast

    from contract.layout import artifact_dir
    from jobs.sources.synthetic import GENRE_VOCABULARY
    from models.safe_weights import save_model
    from models.student import Student, StudentConfig

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
             *sorted({w for genre in GENRE_VOCABULARY.values() for w in genre})]
    out = artifact_dir(lake, version, "student")
    out.mkdir(parents=True)
    (out / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(out))
    torch.manual_seed(seed)
    student = Student(StudentConfig(vocab_size=len(words), pad_token_id=0,
                                    num_known_items=len(known_items), dim=8, max_item_tokens=12,
                                    max_history=5))
    with torch.no_grad():
        student.items.id_embedding.weight.normal_()
        student.items.known_item_ids.copy_(torch.as_tensor(sorted(known_items)))
    save_model(student, out, tokenizer=tokenizer)
    (out / "metrics.json").write_text(json.dumps({"best_valid_ndcg@10": valid_ndcg}))
    return version
