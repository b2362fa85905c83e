import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ML_LATEST_SMALL = SHARED_DATA / "ml-latest-small"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ["RECS_SPARK_UI"] = "0"


@pytest.fixture(scope="session")
def spark():
    from jobs.spark import get_spark

    session = get_spark("recs-tests", master="local[2]", ui=False)
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path):
    return str(tmp_path / "lake")


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
