"""Per-user training examples (udfs/training_examples.py), the pure numpy/pandas function that
build-training-set runs in Spark's Python workers, on hand-made users."""

import numpy as np

from udfs import training_examples as te


def test_histories_exclude_same_time_items_and_negatives_avoid_positives():
    spec = te.ExampleSpec(history_length=2, negatives=1, valid_fraction=0.1, seed=1)
    popular = np.array([10, 11, 12, 13, 20, 21])
    cdf = np.cumsum(np.full(6, 1 / 6))
    cdf[-1] = np.nextafter(1.0, 0.0)

    out = te.sample_user_examples(5, np.array([10, 11, 12, 13]), np.array([100, 200, 200, 300]),
                                   popular, cdf, spec)

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
    out = te.sample_user_examples(1, items, np.arange(10) * 10, np.array([50, 51]), cdf, spec)
    valid = out[(out.label == 1) & (out.split == "valid")]
    assert valid.item_id.tolist() == [9, 10]
