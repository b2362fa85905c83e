"""build-training-set keeps a lake to one mode: an evaluation run over a lake that serves would
replace the day's features (and then recommendations) with ones from truncated histories."""

import pytest
from delta.tables import DeltaTable

from contract.tables import FEATURES_TEST, FEATURES_TRAIN, RECS_TOP_K
from jobs import build_training_set as bts
from jobs import ingest
from jobs.core.delta import write_partition
from jobs.core.lake_mode import LakeModeError

DS = "2026-11-22"


def build(spark, lake, *flags):
    return bts.run(spark, bts.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--history-length", "3", "--negatives", "1", *flags]))


def version(spark, lake, table):
    return DeltaTable.forPath(spark, table.path(lake)).history(1).first()["version"]


def test_modes_do_not_mix_unless_asked(spark, lake):
    ingest.run(spark, ingest.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--synthetic-users", "12", "--synthetic-items", "30",
         "--synthetic-interactions", "8"]))
    build(spark, lake)  # nightly
    write_partition(spark.createDataFrame(  # what the nightly's score serves
        [(1, 1, 7, 0.9, "v1", None)],
        "user_id long, rank int, item_id long, score double, model_version string, "
        "because array<struct<item_id: long, contribution: double>>"), lake, RECS_TOP_K, DS)
    served = {t: version(spark, lake, t) for t in (FEATURES_TRAIN, FEATURES_TEST)}

    with pytest.raises(LakeModeError, match="serves nightly output"):
        build(spark, lake, "--holdout-fraction", "0.2")
    assert {t: version(spark, lake, t) for t in served} == served  # nothing replaced

    counts = build(spark, lake, "--holdout-fraction", "0.2", "--allow-mixed-modes")
    assert counts[FEATURES_TEST.name] > 0
    # Now it holds a held-out split: a nightly run is the one refused.
    with pytest.raises(LakeModeError, match="is an evaluation lake"):
        build(spark, lake)
