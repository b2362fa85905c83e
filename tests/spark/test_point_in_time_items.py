"""features.items: a tag reaches an item's text only from the moment it existed."""

import datetime as dt

from jobs.build_training_set import point_in_time_items

DS = "2026-11-22"
T = dt.datetime(2026, 11, 1)


def at(hours: int) -> dt.datetime:
    return T + dt.timedelta(hours=hours)


def frames(spark):
    items = spark.createDataFrame(
        [(1, "Alpha", ["Drama"]), (2, "Beta", [])],
        "item_id long, title string, genres array<string>")
    # User 10's last train interaction is at hour 100, user 20's at hour 50; user 30 has none.
    train = spark.createDataFrame(
        [(10, 1, at(1)), (10, 2, at(100)), (20, 1, at(50))],
        "user_id long, item_id long, event_ts timestamp")
    tags = spark.createDataFrame(
        [(10, 1, "early", at(90)),        # before its author's last train interaction
         (10, 1, "at-the-end", at(100)),  # exactly at it: counts ("no later than")
         (10, 1, "later", at(101)),       # after it: the author's test period
         (20, 2, "late", at(60)),         # after user 20's last train interaction
         (30, 2, "stranger", at(5)),      # author without train interactions
         (10, 2, "next-day", dt.datetime(2026, 11, 22, 0, 0))],  # at ds 00:00: not before ds
        "user_id long, item_id long, tag string, event_ts timestamp")
    return items, tags, train


def text_and_tags(frame) -> dict:
    return {r.item_id: (sorted(r.tags), r.text) for r in frame.collect()}


def test_evaluation_mode_keeps_tags_written_by_then_by_their_authors(spark):
    items, tags, train = frames(spark)

    got = text_and_tags(point_in_time_items(items, tags, train, DS, evaluation=True))

    assert got == {1: (["at-the-end", "early"], "Alpha. Drama. at-the-end, early"),
                   2: ([], "Beta")}


def test_nightly_mode_keeps_every_tag_written_before_the_run_date(spark):
    items, tags, train = frames(spark)

    got = text_and_tags(point_in_time_items(items, tags, train, DS, evaluation=False))

    assert got == {1: (["at-the-end", "early", "later"], "Alpha. Drama. at-the-end, early, later"),
                   2: (["late", "stranger"], "Beta. late, stranger")}
