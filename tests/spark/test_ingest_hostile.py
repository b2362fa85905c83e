"""Ingest on hostile literal inputs: impossible values, CSV that only a real CSV parser reads
right, undecodable bytes, rows of the wrong width, conflicting repeats, bad flags. Every input
row lands in its table or in raw.quarantine under its own reason; nothing is lost or written
half."""

import base64
import json
import os
from pathlib import Path

import pytest
from deltalake import DeltaTable

from contract.tables import RAW_INTERACTIONS, RAW_ITEMS, RAW_QUARANTINE
from jobs.core.delta import read_partition
from jobs.ops import sql
from jobs.sources import InputError
from tests.conftest import write
from tests.spark.test_ingest import DS, interactions, items, run_ingest, ts

DS_PLUS_1 = 1795392000  # 2026-11-23T00:00:00Z, the default --max-event-ts for DS


def write_bytes(path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def records(spark, lake, reason):
    """The quarantine records of `reason`, comparable with `canonical`."""
    rows = read_partition(spark, lake, RAW_QUARANTINE, DS).where(f"reason = '{reason}'").collect()
    return canonical(*(json.loads(r.record) for r in rows))


def canonical(*records):
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def titles(spark, lake):
    return {item_id: title for item_id, (title, *_) in items(spark, lake).items()}


@pytest.fixture
def ml_dir(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n")
    write(root / "movies.csv", "movieId,title,genres\n10,Heat (1995),Action\n")
    return str(root)


def test_times_outside_the_window_are_quarantined_and_the_table_stays_readable(
        spark, lake, tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n"
                                "1,10,4.0,964982703\n"
                                "1,20,3.5,1445714994000\n"  # epoch milliseconds read as seconds
                                "2,10,5.0,-1\n"  # before 1970
                                f"2,20,2.0,{DS_PLUS_1}\n"  # the last second allowed
                                f"3,10,3.0,{DS_PLUS_1 + 1}\n"
                                "3,20,3.0,99999999999999999\n")  # overflows microseconds
    write(root / "movies.csv", "movieId,title,genres\n10,Heat (1995),Action\n20,Up (2009),Drama\n")
    write(root / "tags.csv", "userId,movieId,tag,timestamp\n"
                             "1,10,heist,1445714994\n1,20,future,1445714994000\n")

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["quarantine"] == {"interactions.timestamp_out_of_range": 4,
                                    "tags.timestamp_out_of_range": 1}
    assert interactions(spark, lake) == [(1, 10, ts(964982703), 4.0),
                                         (2, 20, ts(DS_PLUS_1), 2.0)]
    assert items(spark, lake)[20][2] == []  # the future tag is not on the item
    # A JVM-free reader (deltalake, as DuckDB reads it) can read every timestamp kept.
    event_ts = DeltaTable(RAW_INTERACTIONS.path(lake)).to_pyarrow_table(columns=["event_ts"])
    assert max(event_ts.column("event_ts").to_pylist()).isoformat().startswith("2026-11-23T00:00")


def test_event_window_flags(spark, lake, tmp_path):
    events = write(tmp_path / "events.csv", "uid,iid,when\n"
                                            "7,100,2019-12-31T23:59:59\n"
                                            "7,100,2020-01-01T00:00:00\n"
                                            "7,100,2024-05-31T12:00:00\n"
                                            "7,100,2024-06-01T00:00:00\n")
    catalogue = write(tmp_path / "items.csv", "id,name\n100,Kettle\n")

    counts = run_ingest(spark, lake, "--source", "csv", "--path", events,
                        "--items-path", catalogue, "--user-col", "uid", "--item-col", "iid",
                        "--timestamp-col", "when", "--timestamp-format", "iso",
                        "--item-id-col", "id", "--item-title-col", "name",
                        "--min-event-ts", "2020-01-01", "--max-event-ts", "2024-05-31T23:59:59Z")

    assert counts["quarantine"] == {"interactions.timestamp_out_of_range": 2}
    assert interactions(spark, lake) == [(7, 100, "2020-01-01T00:00:00", None),
                                         (7, 100, "2024-05-31T12:00:00", None)]


def test_a_window_that_excludes_everything_fails_naming_both_flags(spark, lake, ml_dir):
    with pytest.raises(InputError, match="--min-event-ts 2020-01-01T00:00:00\\+00:00 is after "
                                         "--max-event-ts 2019-01-01T00:00:00\\+00:00"):
        run_ingest(spark, lake, "--source", "movielens", "--path", ml_dir,
                   "--min-event-ts", "2020-01-01", "--max-event-ts", "2019-01-01")


@pytest.mark.parametrize("flag", ["--min-event-ts", "--max-event-ts"])
def test_an_unreadable_window_flag_is_a_usage_error_naming_it(flag, capsys):
    from jobs import ingest

    with pytest.raises(SystemExit) as exit_info:
        ingest.build_parser().parse_args(["--ds", DS, flag, "tomorrow"])
    assert exit_info.value.code == 2
    assert f"argument {flag}: expected a date or ISO 8601 date-time" in capsys.readouterr().err


def test_non_finite_ratings_are_quarantined_without_a_rating_range(spark, lake, tmp_path):
    events = write(tmp_path / "events.csv", "uid,iid,when,score\n"
                                            "7,100,1700000000,1\n"
                                            "7,100,1700000001,NaN\n"
                                            "7,100,1700000002,Infinity\n"
                                            "7,100,1700000003,-Infinity\n"
                                            "7,100,1700000004,1e400\n")  # overflows to inf
    catalogue = write(tmp_path / "items.csv", "id,name\n100,Kettle\n")

    counts = run_ingest(spark, lake, "--source", "csv", "--path", events,
                        "--items-path", catalogue, "--user-col", "uid", "--item-col", "iid",
                        "--timestamp-col", "when", "--rating-col", "score",
                        "--item-id-col", "id", "--item-title-col", "name")

    assert counts["quarantine"] == {"interactions.non_finite_rating": 4}
    assert interactions(spark, lake) == [(7, 100, ts(1700000000), 1.0)]


def test_nan_rating_is_non_finite_even_with_a_range(spark, lake, ml_dir):
    write(Path(ml_dir) / "ratings.csv", "userId,movieId,rating,timestamp\n"
                                      "1,10,4.0,964982703\n1,10,NaN,964982704\n")

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", ml_dir)

    assert counts["quarantine"] == {"interactions.non_finite_rating": 1}


def test_quoted_newlines_separators_and_quotes_stay_in_their_field(spark, lake, tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n"
                                "1,10,4.0,964982703\n1,20,3.0,964982704\n")
    write(root / "movies.csv", 'movieId,title,genres\n'
                               '10,"Foo\nBar, Again (1999)",Drama\n'
                               '20,"Say ""Hi"" (2000)",Comedy\n')

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["quarantine"] == {}
    assert counts["raw.items"] == 2 and counts["raw.interactions"] == 2
    assert titles(spark, lake) == {10: "Foo\nBar, Again (1999)", 20: 'Say "Hi" (2000)'}


def test_a_byte_order_mark_before_the_header_is_not_part_of_the_first_column(
        spark, lake, tmp_path):
    root = tmp_path / "ml"
    write_bytes(root / "ratings.csv", b"\xef\xbb\xbfuserId,movieId,rating,timestamp\n"
                                      b"1,10,4.0,964982703\n")
    write_bytes(root / "movies.csv", b"\xef\xbb\xbfmovieId,title,genres\n10,Heat (1995),Action\n")

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["quarantine"] == {}
    assert counts["raw.items"] == 1 and counts["raw.interactions"] == 1


def test_generic_csv_keeps_a_multi_line_text_column(spark, lake, tmp_path):
    events = write(tmp_path / "events.csv", "uid,iid,when\n7,100,1700000000\n")
    catalogue = write(tmp_path / "items.csv", 'id,name,blurb\n100,Kettle,"Whistles.\nLoudly."\n')

    counts = run_ingest(spark, lake, "--source", "csv", "--path", events,
                        "--items-path", catalogue, "--user-col", "uid", "--item-col", "iid",
                        "--timestamp-col", "when", "--item-id-col", "id",
                        "--item-title-col", "name", "--item-text-cols", "blurb")

    assert counts["quarantine"] == {}
    assert items(spark, lake)[100][3] == "Kettle. Whistles.\nLoudly."


def test_bytes_that_are_not_utf8_are_quarantined_with_their_bytes(spark, lake, tmp_path):
    root = tmp_path / "ml"
    latin1_title = "Café Society (1995)".encode("latin-1")
    write_bytes(root / "ratings.csv", b"userId,movieId,rating,timestamp\n"
                                      b"1,10,4.0,964982703\n"
                                      b"1,30,4.0,964982703\n"
                                      b"2,1\xff0,4.0,964982703\n")
    write_bytes(root / "movies.csv", b"movieId,title,genres\n"
                                     + "10,Café (1999),Drama\n".encode()
                                     + b"20," + latin1_title + b",Comedy\n"
                                     + "30,Odd \ufffd (2001),Drama\n".encode())  # valid UTF-8

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["quarantine"] == {"interactions.invalid_encoding": 1,
                                    "items.invalid_encoding": 1}
    assert titles(spark, lake) == {10: "Café (1999)", 30: "Odd \ufffd (2001)"}
    assert records(spark, lake, "invalid_encoding") == canonical(
        {"fields": {"userId": "2", "movieId": "1\ufffd0", "rating": "4.0",
                    "timestamp": "964982703"},
         "base64": {"movieId": base64.b64encode(b"1\xff0").decode()}},
        {"fields": {"movieId": "20", "title": "Caf\ufffd Society (1995)", "genres": "Comedy"},
         "base64": {"title": base64.b64encode(latin1_title).decode()}})


def test_rows_with_too_many_or_too_few_fields_are_malformed(spark, lake, tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n"
                                "1,10,4.0,964982703\n"
                                "1,10,4.0,964982704,extra\n"
                                "1,10,3.0\n")
    write(root / "movies.csv", "movieId,title,genres\n10,Heat (1995),Action\n"
                               '20,"Two\nLines",Drama,Thriller\n')

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["quarantine"] == {"interactions.malformed_row": 2, "items.malformed_row": 1}
    assert counts["raw.interactions"] == 1 and counts["raw.items"] == 1
    assert records(spark, lake, "malformed_row") == canonical(
        {"line": "1,10,4.0,964982704,extra"}, {"line": "1,10,3.0"},
        {"line": '20,"Two\nLines",Drama,Thriller'})


def test_movielens_1m_rows_of_the_wrong_width_are_malformed(spark, lake, tmp_path):
    root = tmp_path / "ml-1m"
    write(root / "ratings.dat", "1::10::5::978300760\n1::10::4::978300761::9\n2::10::3\n")
    write(root / "movies.dat", "10::Heat (1995)::Action\n20::Two::Drama::Extra\n",
          encoding="latin-1")

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["quarantine"] == {"interactions.malformed_row": 2, "items.malformed_row": 1}
    assert interactions(spark, lake) == [(1, 10, ts(978300760), 5.0)]


def test_a_differing_repeat_of_an_item_is_a_conflicting_duplicate(spark, lake, tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n")
    write(root / "movies.csv", "movieId,title,genres\n"
                               "10,Heat copy (1995),Action\n"
                               "10,Heat (1995),Action\n"
                               "10,Heat (1995),Action\n"  # exact repeat
                               "20, Other (1990),Drama\n"
                               "20,Other (1990),Drama\n")  # the same values once trimmed

    counts = run_ingest(spark, lake, "--source", "movielens", "--path", str(root))

    assert counts["quarantine"] == {"items.duplicate": 2, "items.conflicting_duplicate": 1}
    # Kept: the row whose record sorts first ("Heat (" before "Heat c", " Other" before "Other").
    assert titles(spark, lake) == {10: "Heat (1995)", 20: "Other (1990)"}
    assert records(spark, lake, "conflicting_duplicate") == canonical(
        {"item_id": "10", "title": "Heat copy (1995)", "genres": ["Action"]})


@pytest.fixture
def generic_csv(tmp_path):
    events = write(tmp_path / "events.csv", "uid,iid,when\n"
                                            "7,100,2024-03-01 10:00:00\n"
                                            "8,100,2024-03-02 11:30:00\n")
    catalogue = write(tmp_path / "items.csv", "id,name\n100,Kettle\n")
    return ["--source", "csv", "--path", events, "--items-path", catalogue, "--user-col", "uid",
            "--item-col", "iid", "--timestamp-col", "when", "--item-id-col", "id",
            "--item-title-col", "name"]


def test_a_bad_timestamp_format_fails_naming_flag_and_value_before_writing(
        spark, lake, generic_csv):
    with pytest.raises(InputError) as error:
        run_ingest(spark, lake, *generic_csv, "--timestamp-format", "YYYY-mm-dd")

    assert str(error.value).startswith("--timestamp-format 'YYYY-mm-dd' is neither")
    assert "\n" not in str(error.value)
    assert not os.path.exists(RAW_ITEMS.path(lake))


def test_an_input_whose_every_interaction_is_quarantined_fails_unless_allowed(
        spark, lake, generic_csv):
    wrong_pattern = ["--timestamp-format", "yyyy/MM/dd HH:mm:ss"]  # valid, matches nothing
    with pytest.raises(InputError, match=r"^ingest quarantined every interactions row "
                                         r"\(invalid_timestamp: 2\); nothing written\. Pass "
                                         r"--allow-all-quarantined"):
        run_ingest(spark, lake, *generic_csv, *wrong_pattern)
    assert not os.path.exists(RAW_ITEMS.path(lake))

    counts = run_ingest(spark, lake, *generic_csv, *wrong_pattern, "--allow-all-quarantined")

    assert counts["raw.interactions"] == 0 and counts["raw.items"] == 1
    assert counts["quarantine"] == {"interactions.invalid_timestamp": 2}


@pytest.mark.parametrize("value", ["-1", "0"])
def test_sql_max_rows_must_be_positive(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sql.build_parser().parse_args(["--max-rows", value, "SELECT 1"])
    assert exit_info.value.code == 2
    assert f"argument --max-rows: expected a positive integer, got {value}" in capsys.readouterr().err
