import argparse
import logging

import pytest

from contract.args import run_date
from contract.tables import ALL_TABLES, markdown
from jobs import build_training_set, ingest
from jobs.core.step import exit_on_error, root_cause, run_spark_step
from jobs.ops import cli
from tests.conftest import REPO, write


@pytest.mark.parametrize("value", ["2026-02-29", "2026-13-01", "2026-2-3", "20261122",
                                   "2026-11-22T00:00", "yesterday", ""])
def test_ds_rejects_anything_but_a_real_date(value):
    with pytest.raises(argparse.ArgumentTypeError, match="YYYY-MM-DD"):
        run_date(value)


def test_ds_accepts_a_real_date():
    assert run_date("2024-02-29") == "2024-02-29"


def test_bad_ds_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ingest", "--ds", "2026-02-30"])
    assert exit_info.value.code == 2
    assert "--ds must be a real date" in capsys.readouterr().err


def test_unknown_step_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "unknown step 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("parser", [ingest.build_parser(), build_training_set.build_parser(),
                                    cli.run_parser()])
def test_every_flag_has_help(parser):
    undocumented = [a.option_strings for a in parser._actions
                    if a.option_strings and not a.help]
    assert undocumented == []


def test_run_accepts_every_step_flag():
    args = cli.run_parser().parse_args(["--source", "synthetic", "--synthetic-users", "5",
                                        "--holdout-fraction", "0.2", "--negatives", "2"])
    assert (args.synthetic_users, args.holdout_fraction, args.negatives) == (5, 0.2, 2)


@pytest.mark.parametrize("value, expected", [("0", None), ("0.0", None), ("0.2", 0.2)])
def test_holdout_fraction_zero_means_nightly_mode(value, expected):
    args = build_training_set.build_parser().parse_args(["--holdout-fraction", value])
    assert args.holdout_fraction == expected


@pytest.mark.parametrize("value", ["1", "-0.1", "1.5"])
def test_holdout_fraction_rejects_non_fractions(value, capsys):
    with pytest.raises(SystemExit):
        build_training_set.build_parser().parse_args(["--holdout-fraction", value])
    assert "fraction strictly between 0 and 1" in capsys.readouterr().err


def test_tables_doc_matches_the_code():
    with open(REPO / "docs" / "TABLES.md") as doc:
        assert doc.read() == markdown(), "docs/TABLES.md is stale: run `make docs`"


def test_every_table_is_partitioned_by_run_date_and_has_ds():
    assert all(t.partition_by == ("ds",) and t.column_names[-1] == "ds" for t in ALL_TABLES)


def test_a_lake_that_is_a_file_is_refused_before_anything_runs(tmp_path, capsys):
    lake = write(tmp_path / "lake", "not a directory\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ingest", "--lake", lake, "--ds", "2026-11-22"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"recs ingest: error: argument --lake: {lake} is a file; the lake must be a directory "
        "(or a path that does not exist yet)")


@pytest.mark.parametrize("message, cause", [
    ("[PATH_NOT_FOUND] Path does not exist: file:/in. SQLSTATE: 42K03\n\nJVM stacktrace:\n"
     "org.apache.spark.sql.AnalysisException: ...\n\tat org.apache.spark.sql.Dataset.x(...)",
     "[PATH_NOT_FOUND] Path does not exist: file:/in. SQLSTATE: 42K03"),
    ("\n  An exception was thrown from the Python worker. Please see the stack trace below.\n"
     "Traceback (most recent call last):\n  File \"udfs/scoring.py\", line 3, in score\n"
     "ValueError: no item 7 in the student\n",
     "ValueError: no item 7 in the student"),
    ("", "KeyError"),
])
def test_root_cause_is_one_line(message, cause):
    error = KeyError() if not message else RuntimeError(message)
    assert root_cause(error) == cause


def test_error_boundary_exits_with_one_line_and_logs_the_trace_only_at_debug(caplog):
    def fail():
        with exit_on_error("recs score"):
            raise FileNotFoundError("no student artifact at /lake/models/v1/student")

    for level, traced in ((logging.INFO, False), (logging.DEBUG, True)):
        caplog.clear()
        caplog.set_level(level)
        with pytest.raises(SystemExit) as exit_info:
            fail()
        assert exit_info.value.code == (
            "recs score: error: no student artifact at /lake/models/v1/student")
        assert any(r.exc_info for r in caplog.records) is traced


def test_a_step_settled_without_spark_starts_no_session_and_its_errors_are_one_line():
    parser = argparse.ArgumentParser(prog="recs generate-candidates")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--settled", action="store_true")

    def no_spark(args):
        if args.settled:
            return {"recs.candidates": 0}
        raise FileNotFoundError("features.user_history does not exist")

    def run(spark, args):
        raise AssertionError("a settled step must not start Spark")

    assert run_spark_step(parser, run, ["--settled"], without_spark=no_spark) == {
        "recs.candidates": 0}
    with pytest.raises(SystemExit, match="^recs generate-candidates: error: features.user_history"):
        run_spark_step(parser, run, [], without_spark=no_spark)
