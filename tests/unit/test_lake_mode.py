"""A lake holds one mode's output (jobs/core/lake_mode.py), read from literal Delta tables: no
JVM, and `recs run` refuses the other mode before it ingests anything."""

import os

import pyarrow as pa
import pytest

from jobs.core.lake_mode import LakeModeError, output_dates, require_mode
from jobs.ops import cli
from tests.sql_lake import D1, D2, write_literal_lake, write_table

TEST_COLUMNS = [("ds", pa.string()), ("user_id", pa.int64()), ("item_id", pa.int64()),
                ("event_ts", pa.timestamp("us")), ("rating", pa.float64())]


def held_out(lake, ds):
    """What an evaluation run's build-training-set leaves for `ds`: held-out interactions."""
    write_table(lake, "features.test_interactions", TEST_COLUMNS, [(ds, 1, 4, None, None)])


@pytest.fixture
def serving_lake(tmp_path):
    """recs.top_k for D1 and D2, both scored in nightly mode (nothing held out)."""
    return write_literal_lake(str(tmp_path / "lake"))


def test_top_k_without_a_holdout_is_nightly_output(serving_lake):
    assert output_dates(serving_lake) == ([], [D1, D2])
    require_mode(serving_lake, evaluation=False)
    with pytest.raises(LakeModeError, match=rf"serves nightly output .* for ds {D1} \.\. {D2}"):
        require_mode(serving_lake, evaluation=True)


def test_an_evaluation_lake_refuses_nightly_runs(tmp_path):
    lake = str(tmp_path / "lake")
    write_table(lake, "recs.top_k", [("ds", pa.string()), ("user_id", pa.int64())], [(D2, 1)])
    held_out(lake, D2)
    assert output_dates(lake) == ([D2], [])
    require_mode(lake, evaluation=True)
    with pytest.raises(LakeModeError, match=f"is an evaluation lake .* for ds {D2}\\)"):
        require_mode(lake, evaluation=False)


def test_a_mixed_lake_refuses_both(serving_lake):
    held_out(serving_lake, D2)
    assert output_dates(serving_lake) == ([D2], [D1])
    for evaluation in (True, False):
        with pytest.raises(LakeModeError):
            require_mode(serving_lake, evaluation)


def test_a_fresh_lake_takes_either(tmp_path):
    for evaluation in (True, False):
        require_mode(str(tmp_path / "lake"), evaluation)


def test_recs_run_refuses_before_it_ingests(serving_lake):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--lake", serving_lake, "--ds", "2026-11-23", "--holdout-fraction", "0.2"])
    assert str(exit_info.value.code).startswith(
        f"recs run: error: {serving_lake} serves nightly output (recs.top_k or "
        f"recs.model_registry for ds {D1} .. {D2} (2 dates)): an evaluation run")
    assert not os.path.exists(f"{serving_lake}/raw/interactions")  # nothing ingested
