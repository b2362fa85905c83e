"""`recs backfill`: the date x step loop, flag routing and failures, with --dry-run or a fake
spark-submit (tests/slow/test_backfill.py has the real idempotent re-run)."""

import os
import shlex
import stat

import pytest

from jobs.core import pipeline
from jobs.ops import backfill

D1, D2 = "2026-11-20", "2026-11-21"


def planned(argv, capsys):
    backfill.main([*argv, "--dry-run"])
    return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]


def job_and_args(command):
    script = next(i for i, arg in enumerate(command) if arg.endswith(".py"))
    return os.path.basename(command[script]), command[script + 1:]


def test_dates_are_inclusive():
    assert backfill.dates("2026-02-27", "2026-03-01") == ["2026-02-27", "2026-02-28",
                                                          "2026-03-01"]


def test_every_date_runs_the_nightly_steps_in_pipeline_order(lake, capsys, monkeypatch):
    monkeypatch.setenv("RECS_SPARK_CONF", "spark.ui.enabled=false")
    commands = planned(["--from", D1, "--to", D2, "--lake", lake, "--master", "local[2]",
                        "--synthetic-users", "20", "--negatives", "2"], capsys)
    scripts = ["ingest.py", "build_training_set.py", "generate_candidates.py", "score.py"]
    assert [(job_and_args(c)[0], c[c.index("--ds") + 1]) for c in commands] == [
        (script, ds) for ds in (D1, D2) for script in scripts]
    for command in commands:
        assert command[1:3] == ["--master", "local[2]"]
        assert "io.delta:delta-spark_2.13:4.3.1" in command
        assert "spark.ui.enabled=false" in command
        job, args = job_and_args(command)
        assert args[:2] == ["--lake", lake]
        # Each flag goes only to the step that defines it.
        assert ("--synthetic-users" in args) == (job == "ingest.py")
        assert ("--negatives" in args) == (job == "build_training_set.py")


def test_evaluate_runs_by_default_only_in_evaluation_mode(capsys):
    nightly = planned(["--from", D1, "--to", D1], capsys)
    evaluation = planned(["--from", D1, "--to", D1, "--holdout-fraction", "0.2"], capsys)
    assert "evaluate.py" not in [job_and_args(c)[0] for c in nightly]
    assert [job_and_args(c)[0] for c in evaluation][-1] == "evaluate.py"
    assert job_and_args(evaluation[1])[1][-2:] == ["--holdout-fraction", "0.2"]
    zero = planned(["--from", D1, "--to", D1, "--holdout-fraction", "0"], capsys)
    assert [job_and_args(c)[0] for c in zero] == [job_and_args(c)[0] for c in nightly]


def test_steps_subset_keeps_pipeline_order(capsys):
    commands = planned(["--from", D1, "--to", D1, "--steps", "evaluate,build-training-set,ingest",
                        "--holdout-fraction", "0.2", "--baselines", "popularity"], capsys)
    assert [job_and_args(c)[0] for c in commands] == ["ingest.py", "build_training_set.py",
                                                      "evaluate.py"]
    assert job_and_args(commands[1])[1][-2:] == ["--holdout-fraction", "0.2"]
    assert job_and_args(commands[2])[1][-2:] == ["--baselines", "popularity"]


def test_steps_can_be_any_spark_step():
    assert backfill.step_list(",".join(reversed(pipeline.step_names(engine="spark")))) == pipeline.step_names(engine="spark")


@pytest.mark.parametrize("argv, error", [
    (["--from", D2, "--to", D1], f"--from {D2} is after --to {D1}"),
    (["--from", D1, "--to", D2, "--steps", "ingest,frobnicate"], "comma-separated subset"),
    (["--from", "2026-02-30", "--to", D2], "real date"),
    (["--from", D1, "--to", D2, "--no-such-flag"], "unrecognized arguments"),
])
def test_usage_errors(argv, error, capsys):
    with pytest.raises(SystemExit) as exit_info:
        backfill.main(argv)
    assert exit_info.value.code == 2
    assert error in capsys.readouterr().err


def test_every_flag_has_help():
    assert [a.option_strings for a in backfill.build_parser()._actions
            if a.option_strings and not a.help] == []


def fake_spark_submit(tmp_path, fail_on):
    """A spark-submit that writes nothing and exits 3 for any command containing `fail_on`."""
    path = tmp_path / "spark-submit"
    path.write_text(f"#!/bin/sh\ncase \"$*\" in *'{fail_on}'*) exit 3;; esac\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_failed_step_stops_and_names_date_and_step(lake, tmp_path):
    submit = fake_spark_submit(tmp_path, f"ingest.py --lake {lake} --ds {D2}")
    with pytest.raises(SystemExit) as exit_info:
        backfill.main(["--from", D2, "--to", "2026-11-23", "--lake", lake,
                       "--spark-submit", submit])
    assert str(exit_info.value.code).startswith(
        f"recs backfill: step ingest failed for ds={D2} (spark-submit exit code 3)")
    assert f"resume with --from {D2}" in str(exit_info.value.code)


def test_a_failed_gate_stops_and_names_date_step_and_table(lake, tmp_path):
    submit = fake_spark_submit(tmp_path, "never-matches")
    with pytest.raises(SystemExit) as exit_info:
        backfill.main(["--from", D1, "--to", D2, "--lake", lake, "--spark-submit", submit])
    message = str(exit_info.value.code)
    assert message.startswith(f"recs backfill: the check after step ingest failed for ds={D1}")
    assert "raw.interactions: table does not exist" in message
