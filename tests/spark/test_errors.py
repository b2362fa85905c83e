"""A step that fails inside Spark ends in one line naming the file and the cause, not in the
JVM's wrapped stack traces (jobs.core.step.exit_on_error)."""

import pytest

from jobs import ingest
from tests.conftest import write

DS = "2026-11-22"


def test_a_csv_given_as_parquet_is_named_with_the_cause(spark, lake, tmp_path):
    ratings = write(tmp_path / "ratings.csv", "user_id,item_id,timestamp\n1,2,1700000000\n")
    items = write(tmp_path / "items.csv", "item_id,title\n2,Bravo\n")
    with pytest.raises(SystemExit) as exit_info:
        ingest.main(["--lake", lake, "--ds", DS, "--source", "parquet", "--path", ratings,
                     "--items-path", items])
    message = exit_info.value.code
    assert message.startswith("recs ingest: error: ") and "\n" not in message, message
    assert f"{ratings} is not a Parquet file" in message
