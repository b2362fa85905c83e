import datetime as dt

import pandas as pd
import pytest

from contract.tables import RAW_INTERACTIONS, RAW_ITEMS, RAW_QUARANTINE
from jobs import ingest
from jobs.core.delta import read_partition
from jobs.sources import InputError, movielens
from tests.conftest import write

DS = "2026-11-22"


def run_ingest(spark, lake, *argv, ds=DS):
    args = ingest.build_parser().parse_args(["--lake", lake, "--ds", ds, *argv])
    return ingest.run(spark, args)


def interactions(spark, lake, ds=DS):
    df = read_partition(spark, lake, RAW_INTERACTIONS, ds)
    return sorted((r.user_id, r.item_id, r.event_ts.isoformat(), r.rating) for r in df.collect())


def items(spark, lake, ds=DS):
    df = read_partition(spark, lake, RAW_ITEMS, ds)
    return {r.item_id: (r.title, list(r.genres), list(r.tags), r.text) for r in df.collect()}


def ts(seconds):
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).replace(tzinfo=None).isoformat()


@pytest.fixture
def ml_latest(tmp_path):
    root = tmp_path / "ml-latest"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n"
                                "1,10,4.0,964982703\n1,20,3.5,964982224\n"
                                "2,10,5.0,964983815\n2,30,2.0,964982931\n")
    write(root / "movies.csv", 'movieId,title,genres\n10,Heat (1995),Action|Crime|Thriller\n'
                               '20,"American President, The (1995)",Comedy|Drama|Romance\n'
                               "30,Nixon (1995),(no genres listed)\n40,Unseen (2001),Drama\n")
    write(root / "tags.csv", "userId,movieId,tag,timestamp\n1,10,Pacino,1445714994\n"
                             "2,10,heist,1445714996\n3,10, pacino ,1445714996\n"
                             "1,20,politics,1445714996\n")
    return str(root)


def test_movielens_latest_with_tags(spark, lake, ml_latest):
    counts = run_ingest(spark, lake, "--source", "movielens", "--path", ml_latest)

    assert counts["raw.interactions"] == 4 and counts["raw.items"] == 4
    assert counts["quarantine"] == {}
    assert interactions(spark, lake) == [
        (1, 10, ts(964982703), 4.0), (1, 20, ts(964982224), 3.5),
        (2, 10, ts(964983815), 5.0), (2, 30, ts(964982931), 2.0)]
    assert items(spark, lake) == {
        10: ("Heat (1995)", ["Action", "Crime", "Thriller"], ["pacino", "heist"],
             "Heat (1995). Action, Crime, Thriller. pacino, heist"),
        20: ("American President, The (1995)", ["Comedy", "Drama", "Romance"], ["politics"],
             "American President, The (1995). Comedy, Drama, Romance. politics"),
        30: ("Nixon (1995)", [], [], "Nixon (1995)"),
        40: ("Unseen (2001)", ["Drama"], [], "Unseen (2001). Drama"),
    }


def test_movielens_100k(spark, lake, tmp_path):
    root = tmp_path / "ml-100k"
    write(root / "u.data", "1\t10\t4\t881250949\n2\t20\t1\t891717742\n")
    flags_10 = "|".join("1" if g in ("Action", "Thriller") else "0" for g in movielens.ML_100K_GENRES)
    flags_20 = "|".join("1" if g == "Comedy" else "0" for g in movielens.ML_100K_GENRES)
    write(root / "u.item", f"10|Heat (1995)|01-Jan-1995||http://x|{flags_10}\n"
                           f"20|Café Society (1995)|01-Jan-1995||http://y|{flags_20}\n",
          encoding="latin-1")

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["raw.interactions"] == 2 and counts["quarantine"] == {}
    assert interactions(spark, lake) == [(1, 10, ts(881250949), 4.0), (2, 20, ts(891717742), 1.0)]
    assert items(spark, lake) == {
        10: ("Heat (1995)", ["Action", "Thriller"], [], "Heat (1995). Action, Thriller"),
        20: ("Café Society (1995)", ["Comedy"], [], "Café Society (1995). Comedy"),
    }


def test_movielens_1m(spark, lake, tmp_path):
    root = tmp_path / "ml-1m"
    write(root / "ratings.dat", "1::10::5::978300760\n1::20::3::978302109\n")
    write(root / "movies.dat", "10::Café (1999)::Comedy|Drama\n20::Heat (1995)::Action\n",
          encoding="latin-1")

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["raw.interactions"] == 2 and counts["quarantine"] == {}
    assert interactions(spark, lake) == [(1, 10, ts(978300760), 5.0), (1, 20, ts(978302109), 3.0)]
    assert items(spark, lake) == {
        10: ("Café (1999)", ["Comedy", "Drama"], [], "Café (1999). Comedy, Drama"),
        20: ("Heat (1995)", ["Action"], [], "Heat (1995). Action"),
    }


def test_generic_csv_with_column_mapping(spark, lake, tmp_path):
    events = write(tmp_path / "events.csv", "uid,iid,when,score\n"
                                            "7,100,2024-03-01 10:00:00,1\n"
                                            "7,200,2024-03-02 11:30:00,0\n")
    catalogue = write(tmp_path / "catalogue.csv", "id,name,blurb,cats\n"
                                                  "100,Red Kettle,A kettle that whistles,Kitchen|Home\n"
                                                  "200,Blue Mug,,Kitchen\n")
    counts = run_ingest(
        spark, lake, "--source", "csv", "--path", events, "--items-path", catalogue,
        "--user-col", "uid", "--item-col", "iid", "--timestamp-col", "when",
        "--timestamp-format", "yyyy-MM-dd HH:mm:ss", "--rating-col", "score",
        "--rating-range", "0", "1", "--item-id-col", "id", "--item-title-col", "name",
        "--item-text-cols", "blurb", "--item-genres-col", "cats")

    assert counts["quarantine"] == {}
    assert interactions(spark, lake) == [(7, 100, "2024-03-01T10:00:00", 1.0),
                                         (7, 200, "2024-03-02T11:30:00", 0.0)]
    assert items(spark, lake) == {
        100: ("Red Kettle", ["Kitchen", "Home"], [],
              "Red Kettle. Kitchen, Home. A kettle that whistles"),
        200: ("Blue Mug", ["Kitchen"], [], "Blue Mug. Kitchen"),
    }


def test_generic_parquet_with_typed_columns(spark, lake, tmp_path):
    events = tmp_path / "events.parquet"
    pd.DataFrame({"user": [1, 1], "sku": [5, 6],
                  "at": pd.to_datetime(["2024-01-01 00:00:05", "2024-01-02 00:00:00"])}
                 ).to_parquet(events, coerce_timestamps="us")  # Spark cannot read nanosecond parquet
    catalogue = tmp_path / "skus.parquet"
    pd.DataFrame({"sku": [5, 6], "title": ["Tent", "Stove"]}).to_parquet(catalogue)

    counts = run_ingest(spark, lake, "--source", "parquet", "--path", str(events),
                        "--items-path", str(catalogue), "--user-col", "user", "--item-col", "sku",
                        "--timestamp-col", "at", "--item-id-col", "sku")

    assert counts["raw.interactions"] == 2 and counts["quarantine"] == {}
    assert interactions(spark, lake) == [(1, 5, "2024-01-01T00:00:05", None),
                                         (1, 6, "2024-01-02T00:00:00", None)]
    assert items(spark, lake) == {5: ("Tent", [], [], "Tent"), 6: ("Stove", [], [], "Stove")}


def test_bad_rows_are_quarantined_with_reasons_and_counts(spark, lake, tmp_path):
    root = tmp_path / "dirty"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n"
                                "1,10,4.0,964982703\n"
                                "x,10,4.0,964982703\n"
                                ",10,4.0,964982703\n"
                                "1,abc,4.0,964982703\n"
                                "1,20,4.0,notatime\n"
                                "1,20,7.0,964982703\n"
                                "1,20,four,964982703\n"
                                "1,99,4.0,964982703\n"
                                "1,10,4.0,964982703\n"
                                "2,20,3.0,964982800\n")
    write(root / "movies.csv", "movieId,title,genres\n10,Heat (1995),Action\n"
                               "10,Heat copy (1995),Action\nzz,Bad,Drama\n20,Other (1990),Drama\n")
    write(root / "tags.csv", "userId,movieId,tag,timestamp\n1,10,good,1\n1,77,orphan,1\n")

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["quarantine"] == {
        "interactions.duplicate": 1,
        "interactions.invalid_item_id": 1,
        "interactions.invalid_rating": 1,
        "interactions.invalid_timestamp": 1,
        "interactions.invalid_user_id": 2,
        "interactions.rating_out_of_range": 1,
        "interactions.unknown_item": 1,
        "items.conflicting_duplicate": 1,
        "items.invalid_item_id": 1,
        "tags.unknown_item": 1,
    }
    assert interactions(spark, lake) == [(1, 10, ts(964982703), 4.0),
                                         (2, 20, ts(964982800), 3.0)]
    assert items(spark, lake) == {  # the first of the conflicting 10s; the orphan tag dropped
        10: ("Heat (1995)", ["Action"], ["good"], "Heat (1995). Action. good"),
        20: ("Other (1990)", ["Drama"], [], "Other (1990). Drama"),
    }
    quarantined = read_partition(spark, lake, RAW_QUARANTINE, DS).where("reason = 'unknown_item' "
                                                                        "and source_table = 'interactions'")
    assert [r.record for r in quarantined.collect()] == [
        '{"user_id":"1","item_id":"99","timestamp":"964982703","rating":"4.0"}']


def test_reingest_is_idempotent_and_leaves_other_dates_alone(spark, lake, ml_latest):
    run_ingest(spark, lake, "--source", "movielens", "--path", ml_latest, ds="2026-11-21")
    first = run_ingest(spark, lake, "--source", "movielens", "--path", ml_latest)
    before = interactions(spark, lake)

    second = run_ingest(spark, lake, "--source", "movielens", "--path", ml_latest)

    assert second == first
    assert interactions(spark, lake) == before
    assert interactions(spark, lake, ds="2026-11-21") == before
    total = spark.read.format("delta").load(RAW_INTERACTIONS.path(lake)).count()
    assert total == 8


def test_missing_path_fails_naming_it(spark, lake, tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        run_ingest(spark, lake, "--source", "movielens", "--path", str(tmp_path / "nowhere"))


def test_empty_file_fails_naming_it(spark, lake, tmp_path, ml_latest):
    write(tmp_path / "ml-latest" / "ratings.csv", "")
    with pytest.raises(InputError, match=r"input is empty: .*ratings\.csv"):
        run_ingest(spark, lake, "--source", "movielens", "--path", ml_latest)


def test_header_only_file_fails_naming_it(spark, lake, tmp_path, ml_latest):
    write(tmp_path / "ml-latest" / "ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(InputError, match=r"no rows: .*ratings\.csv"):
        run_ingest(spark, lake, "--source", "movielens", "--path", ml_latest)


def test_missing_column_fails_naming_file_and_column(spark, lake, tmp_path, ml_latest):
    write(tmp_path / "ml-latest" / "ratings.csv", "userId,movieId,rating\n1,10,4.0\n")
    with pytest.raises(InputError, match=r"ratings\.csv lacks required column\(s\) timestamp"):
        run_ingest(spark, lake, "--source", "movielens", "--path", ml_latest)


def test_synthetic_source_writes_generator_output_without_quarantine(spark, lake):
    counts = run_ingest(spark, lake, "--synthetic-users", "30", "--synthetic-items", "80",
                        "--synthetic-interactions", "10")
    from jobs.sources import synthetic

    catalogue, events = synthetic.generate(
        synthetic.SyntheticSpec(num_users=30, num_items=80, mean_interactions_per_user=10), DS)
    assert counts["raw.interactions"] == len(events)
    assert counts["raw.items"] == len(catalogue) == 80
    assert counts["quarantine"] == {}
