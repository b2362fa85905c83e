"""recs.top_k.because through the real jobs on a literal log: explanations name only items the
user interacted with before `ds`, add up with the rest of the history to the served score, and
an old recs.top_k without the column takes the new partition."""

import numpy as np
import pytest
import torch

from contract.tables import FEATURES_USER_HISTORY, RECS_TOP_K
from jobs import build_training_set, generate_candidates, ingest, score
from jobs.core import registry
from jobs.core.delta import read_partition
from models.student import load_student
from tests.conftest import make_student, write

DS, EARLIER = "2026-11-22", "2026-11-21"
# (user, item, when): what each user did before ds, and on or after it (never to be named).
BEFORE = {1: [(1, "2026-11-01"), (2, "2026-11-02"), (3, "2026-11-03"), (6, "2026-11-04")],
          2: [(2, "2026-11-05"), (6, "2026-11-06"), (4, "2026-11-07")],
          3: [(7, "2026-11-08")]}
AFTER = {1: [(4, "2026-11-22"), (5, "2026-11-23")], 2: [(1, "2026-11-22")], 3: [(8, "2026-11-25")]}
TITLES = {1: "Haunted Crypt", 2: "Space Robot", 3: "Outlaw Sheriff", 4: "Love Letters",
          5: "Heist Detective", 6: "Alien Galaxy", 7: "Dragon Magic", 8: "Song And Dance",
          9: "Champion League", 10: "Wizard Quest"}


@pytest.fixture(scope="module")
def explained_lake(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("explained")
    lake = str(root / "lake")
    events = write(root / "events.csv", "user,item,at\n" + "".join(
        f"{u},{i},{day} 12:00:00\n" for log in (BEFORE, AFTER) for u, rows in log.items()
        for i, day in rows))
    items = write(root / "items.csv", "id,title\n" + "".join(f"{i},{t}\n" for i, t in TITLES.items()))
    ingest.run(spark, ingest.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--source", "csv", "--path", events, "--items-path", items,
         "--user-col", "user", "--item-col", "item", "--timestamp-col", "at",
         "--timestamp-format", "yyyy-MM-dd HH:mm:ss", "--item-id-col", "id"]))
    build_training_set.run(spark, build_training_set.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--history-length", "5", "--negatives", "1"]))
    make_student(lake, "v1", known_items=list(TITLES), seed=4)
    generate_candidates.run(spark, generate_candidates.build_parser().parse_args(
        ["--lake", lake, "--ds", DS]))
    # A recs.top_k from before `because` existed: the next write must add the column to it.
    (spark.createDataFrame([(1, 1, 9, 0.5, "v0", EARLIER)], "user_id long, rank int, "
                           "item_id long, score double, model_version string, ds string")
     .write.format("delta").partitionBy("ds").save(RECS_TOP_K.path(lake)))
    score.run(spark, score.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--model-version", "v1", "--k", "5"]))
    return lake


def test_explanations_name_only_history_items_from_before_ds(spark, explained_lake):
    top = read_partition(spark, explained_lake, RECS_TOP_K, DS).collect()
    history = {r.user_id: set(r.history_item_ids) for r in
               read_partition(spark, explained_lake, FEATURES_USER_HISTORY, DS).collect()}
    assert len(top) == 5 + 5 + 5 and any(r.because for r in top)
    for row in top:
        named = [e.item_id for e in row.because]
        contributions = [e.contribution for e in row.because]
        assert set(named) <= {i for i, _ in BEFORE[row.user_id]} & history[row.user_id]
        assert not set(named) & {i for i, _ in AFTER[row.user_id]}
        assert len(named) == len(set(named)) <= 3
        assert contributions == sorted(contributions, reverse=True) and min(contributions,
                                                                            default=1) > 0


def test_served_explanations_are_the_exact_split_of_the_served_score(spark, explained_lake):
    state = score.scoring_state(spark, explained_lake, DS,
                                registry.student_dir(explained_lake, "v1"))
    top = read_partition(spark, explained_lake, RECS_TOP_K, DS).toPandas()
    users, items = top["user_id"].to_numpy(), top["item_id"].to_numpy()
    served = [[(e["item_id"], e["contribution"]) for e in because] for because in top["because"]]
    direct = [[(e["item_id"], e["contribution"]) for e in because]
              for because in state.explain_pairs(users, items).to_pylist()]
    assert [[i for i, _ in row] for row in served] == [[i for i, _ in row] for row in direct]
    np.testing.assert_allclose([c for row in served for _, c in row],
                               [c for row in direct for _, c in row], rtol=1e-6)
    # Every history term of the state's rows, named or not, plus the bias is the written score:
    # by the torch student itself, which the workers' numpy port never imports.
    student, _ = load_student(registry.student_dir(explained_lake, "v1"))
    item_vecs = torch.as_tensor(state.item_vecs)
    history = torch.as_tensor(state.history_rows[np.searchsorted(state.user_ids, users)]).long()
    mask = history >= 0
    with torch.no_grad():
        per_position, bias = student.contributions(
            item_vecs[history.clamp(min=0)] * mask.unsqueeze(-1), mask,
            item_vecs[np.searchsorted(state.item_ids, items)])
        # recs.top_k.score is served: minus the popularity correction, a term of the item alone.
        plain = top["score"] + student.popularity_penalty(torch.as_tensor(items)).numpy()
    np.testing.assert_allclose((per_position.sum(-1) + bias).numpy(), plain, rtol=1e-5, atol=1e-5)


def test_fidelity_is_measured_on_the_served_rows_and_counts_the_rest(explained_lake):
    from models.explanation_fidelity import TARGETS, explanation_fidelity

    values = explanation_fidelity(explained_lake, DS, "v1")
    # User 3's history is one item: nothing else to remove at random, so their 5 rows are counted,
    # not measured; every row names an item.
    assert (values["explanation_sampled_rows"], values["explanation_single_item_rows"],
            values["explanation_unexplained_rows"]) == (10, 5, 0)
    for metric in TARGETS:
        low, high = values[metric + ":ci95"]
        assert 0 <= low <= values[metric] <= high <= 1
    assert explanation_fidelity(explained_lake, DS, "another-version") is None


def test_an_old_top_k_without_the_column_takes_the_new_partition(spark, explained_lake):
    rows = spark.read.format("delta").load(RECS_TOP_K.path(explained_lake))
    assert "because" in rows.columns
    earlier = rows.where(f"ds = '{EARLIER}'").collect()
    assert [(r.item_id, r.because) for r in earlier] == [(9, None)]
    assert rows.where(f"ds = '{DS}' AND because IS NULL").count() == 0
