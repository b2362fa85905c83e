"""Per-user training examples (udfs/training_examples.py), the pure numpy/pandas function that
build-training-set runs in Spark's Python workers, on hand-made users."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from udfs import training_examples as te


def test_histories_exclude_same_time_items_and_negatives_avoid_positives():
    spec = te.ExampleSpec(history_length=2, negatives=1, valid_fraction=0.1, seed=1)
    popular = np.array([10, 11, 12, 13, 20, 21])
    cdf = np.cumsum(np.full(6, 1 / 6))
    cdf[-1] = np.nextafter(1.0, 0.0)

    out = pd.DataFrame(te.sample_user_examples(5, np.array([10, 11, 12, 13]),
                                               np.array([100, 200, 200, 300]), popular, cdf, spec))

    positives = out[out.label == 1]
    assert positives.item_id.tolist() == [11, 12, 13]  # item 10 has no earlier history
    assert [list(h) for h in positives.history_item_ids] == [[10], [10], [12, 11]]
    negatives = out[out.label == 0]
    assert negatives.position.tolist() == [1, 2, 3]
    assert set(negatives.item_id) <= {20, 21}
    assert set(out.split) == {"train"}  # 4 interactions: too few to carve validation from


def test_latest_targets_are_marked_valid():
    spec = te.ExampleSpec(history_length=3, negatives=1, valid_fraction=0.2, seed=1)
    items = np.arange(1, 11)
    cdf = np.array([0.5, np.nextafter(1.0, 0.0)])
    out = pd.DataFrame(te.sample_user_examples(1, items, np.arange(10) * 10, np.array([50, 51]),
                                               cdf, spec))
    valid = out[(out.label == 1) & (out.split == "valid")]
    assert valid.item_id.tolist() == [9, 10]


def _run_batches(rows: list[tuple[int, int, int]], batch_rows: int, spec: te.ExampleSpec
                 ) -> pd.DataFrame:
    """examples_in_batches over `rows` (user, item, seconds) cut into batches of batch_rows."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "seconds"])
    batches = pa.Table.from_pandas(frame, preserve_index=False).to_batches(batch_rows)
    run = te.examples_in_batches(np.array([50, 51, 52]), np.array([0.3, 0.6, np.nextafter(1, 0)]),
                                 spec)
    return pa.Table.from_batches(list(run(iter(batches)))).to_pandas()


# User 1 has 2 targets (item 10 at t=0 has no history), user 2 (one interaction) none, user 3
# has 3 targets, two of them at the same moment (t=5): neither is the other's history.
ROWS = [(1, 10, 0), (1, 11, 1), (1, 12, 2), (2, 20, 0), (3, 30, 0), (3, 31, 5), (3, 32, 5),
        (3, 33, 9)]


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 100])
def test_batches_give_each_user_its_examples_wherever_the_batches_cut(batch_rows):
    spec = te.ExampleSpec(history_length=2, negatives=1, valid_fraction=0.1, seed=1)
    out = _run_batches(ROWS, batch_rows, spec)
    assert list(out.columns) == te.EXAMPLE_IDS_COLUMNS
    positives = out[out.label == 1]
    assert list(zip(positives.user_id, positives.item_id)) == [(1, 11), (1, 12), (3, 31), (3, 32),
                                                               (3, 33)]
    assert [list(h) for h in positives.history_item_ids] == [[10], [11, 10], [30], [30], [32, 31]]
    assert (out.groupby(["user_id", "position"]).size() == 2).all()
    # Per user, exactly what the one-user function gives: the batching changes nothing.
    alone = pd.DataFrame(te.sample_user_examples(3, np.array([30, 31, 32, 33]),
                                                 np.array([0, 5, 5, 9]), np.array([50, 51, 52]),
                                                 np.array([0.3, 0.6, np.nextafter(1, 0)]), spec))
    pd.testing.assert_frame_equal(out[out.user_id == 3].drop(columns="user_id")
                                  .reset_index(drop=True), alone, check_dtype=False)


def test_a_partition_of_users_without_targets_yields_typed_empty_batches():
    out = _run_batches([(2, 20, 0), (4, 40, 3), (4, 41, 3)], 2, te.ExampleSpec())
    assert out.empty and list(out.columns) == te.EXAMPLE_IDS_COLUMNS


def test_rows_not_clustered_by_user_are_refused():
    with pytest.raises(ValueError, match="sorted by user"):
        _run_batches([(2, 20, 0), (1, 10, 0), (2, 21, 1)], 100, te.ExampleSpec())
