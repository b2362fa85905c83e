"""`recs check`: the JVM-free quality gate, on small lakes written with deltalake."""

import pyarrow as pa
import pytest

from contract import delta_reader
from contract.tables import BY_NAME
from jobs.core import pipeline
from jobs.ops import quality
from tests.conftest import mark_ingested, write_ingest_run

DS, OLD_DS = "2026-11-22", "2026-11-21"


def write(lake, name, rows, columns):
    from deltalake import write_deltalake

    data = pa.Table.from_pylist(rows, schema=pa.schema(columns))
    write_deltalake(BY_NAME[name].path(lake), data, partition_by=["ds"], mode="append")


def raw_lake(lake, ds, interactions, items, quarantined, commit=True):
    """quarantined: {source_table: rows}; `commit`: with the ingest run recording them."""
    write(lake, "raw.interactions",
          [{"ds": ds, "user_id": i, "item_id": 1} for i in range(interactions)],
          [("ds", pa.string()), ("user_id", pa.int64()), ("item_id", pa.int64())])
    write(lake, "raw.items", [{"ds": ds, "item_id": i, "title": "t"} for i in range(items)],
          [("ds", pa.string()), ("item_id", pa.int64()), ("title", pa.string())])
    write(lake, "raw.quarantine",
          [{"ds": ds, "source_table": source, "reason": "invalid_user_id", "record": "{}"}
           for source, n in quarantined.items() for _ in range(n)],
          [("ds", pa.string()), ("source_table", pa.string()), ("reason", pa.string()),
           ("record", pa.string())])
    if commit:
        mark_ingested(lake, ds)


def test_passes_within_the_threshold(lake):
    raw_lake(lake, DS, interactions=95, items=10, quarantined={"interactions": 5})
    assert quality.check(lake, DS, 0.05, ["raw.interactions", "raw.items"]) is None
    assert quality.problems(lake, DS, 0.05, ["raw.interactions", "raw.items"]) == []
    # Exactly at the threshold passes; the same lake just under it fails, naming the counts.
    assert quality.problems(lake, DS, 0.04) == [
        (f"raw.interactions: 5 of 100 rows quarantined for ds={DS} (5.0%), above the allowed "
         "4.0% (reasons in raw.quarantine)")]


def test_quarantine_over_threshold_names_the_table_and_counts(lake, capsys):
    raw_lake(lake, DS, interactions=90, items=10, quarantined={"interactions": 10, "tags": 50})
    with pytest.raises(SystemExit) as exit_info:
        quality.main(["--lake", lake, "--ds", DS, "--max-quarantine-fraction", "0.05",
                      "--require", "raw.items"])
    message = str(exit_info.value.code)
    assert message.startswith(f"recs check: quality gate failed for ds={DS}:")
    assert (f"raw.interactions: 10 of 100 rows quarantined for ds={DS} (10.0%), above the "
            "allowed 5.0%") in message
    assert "raw.items" not in message  # 0 of 10 quarantined, and it has rows


def test_each_raw_table_is_judged_on_its_own(lake):
    """A big healthy log must not hide a catalogue that lost most of its items."""
    raw_lake(lake, DS, interactions=10_000, items=4, quarantined={"items": 6})
    assert quality.problems(lake, DS, 0.05) == [
        f"raw.items: 6 of 10 rows quarantined for ds={DS} (60.0%), above the allowed 5.0% "
        "(reasons in raw.quarantine)"]


def test_zero_tolerates_no_quarantined_row(lake):
    raw_lake(lake, DS, interactions=1000, items=10, quarantined={"interactions": 1})
    assert quality.problems(lake, DS, 0.0) == [
        (f"raw.interactions: 1 of 1001 rows quarantined for ds={DS} (0.1%), above the allowed "
         "0.0% (reasons in raw.quarantine)")]
    assert quality.problems(lake, DS, 0.01) == []


def test_only_the_given_ds_counts(lake):
    raw_lake(lake, OLD_DS, interactions=1, items=1, quarantined={"interactions": 99})
    raw_lake(lake, DS, interactions=100, items=10, quarantined={})
    assert quality.problems(lake, DS, 0.05, ["raw.interactions"]) == []
    assert quality.problems(lake, OLD_DS, 0.05) == [
        (f"raw.interactions: 99 of 100 rows quarantined for ds={OLD_DS} (99.0%), above the "
         "allowed 5.0% (reasons in raw.quarantine)")]


def test_missing_table_and_empty_partition_are_named(lake):
    raw_lake(lake, OLD_DS, interactions=5, items=5, quarantined={})
    found = quality.problems(lake, DS, None, ["raw.items", "features.user_history"])
    missing = BY_NAME["features.user_history"].path(lake)
    assert found == [
        NOT_COMMITTED,
        f"features.user_history: table does not exist at {missing} "
        f"(run `recs build-training-set` for ds={DS})",
    ]
    raw_lake(lake, DS, interactions=0, items=0, quarantined={"items": 1})
    assert quality.problems(lake, DS, None, ["raw.items"]) == [
        f"raw.items: 0 rows for ds={DS}; the next step needs rows"]


def test_missing_quarantine_table_fails_the_quarantine_check(lake):
    assert quality.problems(lake, DS, 0.05) == [
        (f"raw.quarantine: table does not exist at {BY_NAME['raw.quarantine'].path(lake)} "
         f"(run `recs ingest` for ds={DS})")]


NOT_COMMITTED = (f"raw.ingest_runs: no committed ingest for ds={DS}, so readers refuse its raw "
                 f"tables (run `recs ingest` for ds={DS})")


def test_raw_tables_without_a_committed_ingest_fail_whatever_they_hold(lake):
    """What a process killed between two of ingest's commits leaves (a first ingest of ds): the
    marker table exists (ingest creates it first) without a row for ds."""
    raw_lake(lake, "2026-01-01", interactions=1, items=1, quarantined={})
    raw_lake(lake, DS, interactions=95, items=10, quarantined={"interactions": 5}, commit=False)
    assert quality.problems(lake, DS, 0.05, ["raw.interactions", "raw.items"]) == [NOT_COMMITTED]
    with pytest.raises(quality.QualityError, match="no committed ingest"):
        quality.check_step(lake, DS, "ingest", 0.05)


def test_a_lake_written_before_the_commit_marker_is_judged_on_its_rows(lake, caplog):
    raw_lake(lake, DS, interactions=95, items=10, quarantined={"interactions": 5}, commit=False)
    assert quality.problems(lake, DS, 0.05, ["raw.interactions", "raw.items"]) == []
    assert "predates ingest's commit marker" in caplog.text
    assert quality.problems(lake, DS, 0.04)  # the quarantine share is still judged


def test_raw_tables_that_disagree_with_their_ingest_run_fail(lake):
    raw_lake(lake, DS, interactions=95, items=10, quarantined={"interactions": 5})
    write(lake, "raw.interactions", [{"ds": DS, "user_id": 7, "item_id": 1}],
          [("ds", pa.string()), ("user_id", pa.int64()), ("item_id", pa.int64())])
    assert quality.problems(lake, DS, None, ["raw.interactions"]) == [
        f"raw.interactions: 96 rows for ds={DS}, but raw.ingest_runs recorded 95 (run test-run)",
        "raw.interactions: 100 rows read from the source, but 96 kept + 5 quarantined"]


def test_a_pending_ingest_is_judged_at_the_versions_of_the_committed_one(lake):
    """A re-ingest stopped after its first table: the check sees the committed run, whole."""
    raw_lake(lake, DS, interactions=95, items=10, quarantined={"interactions": 5})
    committed = delta_reader.ingest_run(lake, DS)
    write_ingest_run(lake, {**committed, "pending_run_id": "r2", "pending_since": None})
    write(lake, "raw.interactions", [{"ds": DS, "user_id": 7, "item_id": 1}] * 50,
          [("ds", pa.string()), ("user_id", pa.int64()), ("item_id", pa.int64())])
    assert delta_reader.count_rows(lake, BY_NAME["raw.interactions"], DS) == 95
    assert quality.problems(lake, DS, 0.05, ["raw.interactions", "raw.items"]) == []


def test_passing_main_prints_and_exits_zero(lake, capsys):
    raw_lake(lake, DS, interactions=10, items=10, quarantined={})
    assert quality.main(["--lake", lake, "--ds", DS, "--require", "raw.interactions"]) is None
    assert capsys.readouterr().out == f"recs check: ds={DS} passed\n"


@pytest.mark.parametrize("argv, error", [
    (["--ds", DS], "nothing to check"),
    (["--ds", DS, "--require", "raw.nope"], "invalid choice"),
    (["--ds", DS, "--max-quarantine-fraction", "1.5"], "between 0 and 1"),
])
def test_usage_errors(argv, error, capsys):
    with pytest.raises(SystemExit) as exit_info:
        quality.main(argv)
    assert exit_info.value.code == 2
    assert error in capsys.readouterr().err


def test_every_flag_has_help():
    assert [a.option_strings for a in quality.build_parser()._actions
            if a.option_strings and not a.help] == []


def test_gates_follow_steps_and_name_registry_tables():
    assert set(quality.GATES) <= set(pipeline.step_names(engine="spark"))
    for gate in quality.GATES.values():
        assert set(gate.require) <= set(BY_NAME)
    assert set(quality.QUARANTINED_SOURCES) <= set(BY_NAME)


def test_a_step_without_a_gate_passes(lake):
    # The empty lake fails every gate (ingest's, for one), so passing here means no gate ran.
    with pytest.raises(quality.QualityError, match="raw.interactions: table does not exist"):
        quality.check_step(lake, DS, "ingest", 0.0)
    assert quality.check_step(lake, DS, "a-step-without-gate", 0.0) is None
    # So do the pipeline's own ungated steps (the model steps, publish).
    for step in set(pipeline.step_names()) - set(quality.GATES):
        assert quality.check_step(lake, DS, step, 0.0) is None
