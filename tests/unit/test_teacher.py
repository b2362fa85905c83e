"""Teacher: metrics, Delta reading, model behaviour, artifacts, and both CLIs end to end.

A tiny random BERT (hidden 32, 2 layers) with a real tokenizer built from a word list stands in
for the pretrained model, so the whole file runs on CPU in seconds without any download.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from deltalake import write_deltalake
from transformers import BertConfig, BertModel, BertTokenizerFast

from contract.delta_reader import read_partition
from contract.tables import (
    FEATURES_EXAMPLES,
    FEATURES_ITEMS,
    FEATURES_TEST,
    FEATURES_TRAIN,
    FEATURES_USER_HISTORY,
)
from models import debias, distill, evaluate_teacher, metrics, runtime, train_teacher
from models.artifact import ArtifactError, build_teacher, load_teacher
from models.data import (
    Catalogue,
    Groups,
    concat_groups,
    future_targets,
    read_examples,
    tokenize,
    truncate_history,
    validation_task,
)
from models.evaluate_student import distillation_gain
from models.safe_weights import save_model
from models.scoring import item_vectors, text_from_tokens, user_vectors
from models.text_tuning import TextTuning, co_consumed_pairs, tune_item_text
from models.training import (
    ItemText,
    TrainOptions,
    batch_loss,
    dropped_ids,
    evaluate_task,
    fit,
    make_batch,
    param_groups,
)

DS = "2024-03-01"
OTHER_DS = "2024-02-29"
COLOURS = ["red", "blue"]
SHAPES = ["circle", "square", "star", "moon", "cube", "ring", "cone", "disc", "leaf", "wave"]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "item", *COLOURS, *SHAPES]


# ---------------------------------------------------------------------------------------------
# Fixtures: a tiny base model and a tiny lake


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> str:
    """A random 2-layer BERT saved like a Hugging Face model dir (safetensors + tokenizer)."""
    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    # transformers 5 ignores BertTokenizerFast(vocab_file=...) (every word becomes [UNK]);
    # from_pretrained on a directory holding vocab.txt does read it.
    tokenizer = BertTokenizerFast.from_pretrained(str(path))
    assert tokenizer("red item circle")["input_ids"] == [2, 7, 6, 9, 3]
    tokenizer.save_pretrained(path)
    return str(path)


def item_text(item_id: int) -> str:
    # Colour carries the taste signal; the shape word makes every text distinct.
    return f"{COLOURS[item_id % 2]} item {SHAPES[item_id // 2 % len(SHAPES)]}"


ITEM_IDS = list(range(100, 120))  # even = red, odd = blue
USERS = {1: "red", 2: "red", 3: "blue", 4: "blue"}


def planted_examples() -> list[dict]:
    """Each user's next item has their colour; negatives have the other colour."""
    rows, group = [], 0
    for user, colour in USERS.items():
        mine = [i for i in ITEM_IDS if COLOURS[i % 2] == colour]
        other = [i for i in ITEM_IDS if COLOURS[i % 2] != colour]
        for step in range(1, 8):
            history = [mine[(step - k) % len(mine)] for k in range(1, min(step, 3) + 1)]
            target = mine[step % len(mine)]
            split = "valid" if step == 7 else "train"
            ts = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=step)
            negatives = [other[(step + user + k) % len(other)] for k in range(3)]
            for item, label in [(target, 1)] + [(n, 0) for n in negatives]:
                rows.append({"example_group": group, "user_id": user, "item_id": item,
                             "label": label, "target_ts": ts, "split": split,
                             "history_item_ids": history,
                             "history_texts": [item_text(h) for h in history],
                             "item_text": item_text(item)})
            group += 1
    return rows


ARROW_TYPES = {"string": pa.string(), "long": pa.int64(), "int": pa.int32(),
               "double": pa.float64(), "timestamp": pa.timestamp("us", tz="UTC"),
               "array<long>": pa.list_(pa.int64()), "array<string>": pa.list_(pa.string())}


def write_table(lake: str, table, rows: list[dict], ds: str = DS, mode: str = "append") -> None:
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in table.columns])
    data = pa.Table.from_pylist([{**r, "ds": ds} for r in rows], schema=schema)
    write_deltalake(table.path(lake), data, partition_by=["ds"], mode=mode)


@pytest.fixture
def tiny_lake(tmp_path) -> str:
    lake = str(tmp_path / "lake")
    write_table(lake, FEATURES_ITEMS, [{"item_id": i, "title": f"t{i}", "genres": [], "tags": [],
                                   "text": item_text(i)} for i in ITEM_IDS])
    examples = planted_examples()
    write_table(lake, FEATURES_EXAMPLES, examples)
    # Train interactions: each user's first 8 items of their colour (the first is history only).
    train = {u: [i for i in ITEM_IDS if COLOURS[i % 2] == c][:8] for u, c in USERS.items()}
    write_table(lake, FEATURES_TRAIN, [
        {"user_id": u, "item_id": i, "event_ts": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
         + dt.timedelta(days=k), "rating": 4.0} for u, items in train.items()
        for k, i in enumerate(items)])
    # Test: each user's next two items of their colour; nobody has them in train (cold items).
    write_table(lake, FEATURES_TEST, [
        {"user_id": u, "item_id": i, "event_ts": dt.datetime(2024, 2, 1, tzinfo=dt.UTC),
         "rating": 5.0} for u, c in USERS.items() for i in ITEM_IDS[-4:] if COLOURS[i % 2] == c])
    write_table(lake, FEATURES_USER_HISTORY, [
        {"user_id": u, "history_item_ids": items[::-1][:3],
         "history_texts": [item_text(i) for i in items[::-1][:3]], "num_train_interactions": 8}
        for u, items in train.items()])
    return lake


def tiny_teacher(base_model: str, known: list[int], **options):
    defaults = {"max_item_tokens": 8, "max_history": 5, "history_token_budget": 40,
                "user_heads": 2, "dropout": 0.0, "temperature": 0.1}
    return build_teacher(base_model, np.asarray(known), **{**defaults, **options})


def planted_groups() -> tuple[Catalogue, Groups, Groups]:
    catalogue = Catalogue(np.asarray(ITEM_IDS), [item_text(i) for i in ITEM_IDS])
    by_group: dict[int, list[dict]] = {}
    for r in planted_examples():
        by_group.setdefault(r["example_group"], []).append(r)
    rows = {"train": [], "valid": []}
    for group in by_group.values():
        rows[group[0]["split"]].append(group)

    def groups(gs: list[list[dict]]) -> Groups:
        hist = np.full((len(gs), 3), -1)
        for i, g in enumerate(gs):
            h = catalogue.rows(np.asarray(g[0]["history_item_ids"]))
            hist[i, : len(h)] = h
        return Groups(
            user_ids=np.asarray([g[0]["user_id"] for g in gs]),
            positive=catalogue.rows(np.asarray([g[0]["item_id"] for g in gs])),
            negatives=np.stack([catalogue.rows(np.asarray([r["item_id"] for r in g[1:]])) for g in gs]),
            history=hist,
            target_ts=np.zeros(len(gs), dtype=np.int64))

    return catalogue, groups(rows["train"]), groups(rows["valid"])


# ---------------------------------------------------------------------------------------------
# Metrics


def test_metrics_on_a_hand_computed_example():
    ranked = ["a", "b", "c", "d", "e"]
    relevant = {"b", "d", "z"}
    # DCG = 1/log2(3) + 1/log2(5); ideal DCG over 3 hits = 1 + 1/log2(3) + 1/log2(4).
    assert metrics.ndcg_at_k(ranked, relevant, 10) == pytest.approx(0.49818925746641285, abs=1e-12)
    assert metrics.recall_at_k(ranked, relevant, 20) == pytest.approx(2 / 3)
    # Only the top k count; recall's denominator is min(k, |relevant|).
    assert metrics.ndcg_at_k(ranked, relevant, 1) == 0.0
    assert metrics.recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 2)
    assert metrics.ndcg_at_k(["x", "y"], {"x", "y"}, 10) == pytest.approx(1.0)
    assert metrics.coverage_at_k([["a", "b"], ["b", "c"]], 10, k=10) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        metrics.ndcg_at_k(ranked, set())


def test_evaluate_means_over_users_and_cold_recall():
    rankings = {1: ["a", "b", "c"], 2: ["c", "d", "e"], 3: ["z"]}
    relevant = {1: ["a"], 2: ["e", "f"], 3: []}  # user 3 has no test items: not evaluated
    out = metrics.evaluate(rankings, relevant, catalogue_size=10, cold_items=["f", "e"])
    # user 1: hit at rank 1 -> NDCG 1; user 2: hit at rank 3 -> (1/log2 4) / (1 + 1/log2 3).
    assert out["ndcg@10"] == pytest.approx((1 + 0.5 / (1 + 1 / math.log2(3))) / 2)
    assert out["recall@20"] == pytest.approx((1 + 0.5) / 2)
    assert out["coverage@10"] == pytest.approx(5 / 10)  # a b c d e: user 3's list does not count
    assert out["cold_recall@20"] == pytest.approx(0.5)  # only user 2 has cold items: e hit, f not
    assert (out["evaluated_users"], out["cold_users"], out["cold_test_interactions"]) == (2, 1, 2)


# ---------------------------------------------------------------------------------------------
# Lake reading


def test_paired_difference_pairs_users_and_cancels_what_they_share():
    # Users differ wildly, but b is always a 0.1 below a: the paired interval is that exactly.
    a = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.3}
    b = {u: v - 0.1 for u, v in a.items()} | {5: 1.0}  # user 5 has no pair and is left out
    paired = metrics.paired_difference(a, b)
    assert paired["users"] == 4
    assert paired["difference"] == pytest.approx(0.1)
    assert paired["ci_low"] == pytest.approx(0.1) and paired["ci_high"] == pytest.approx(0.1)
    assert metrics.format_difference(paired) == "+0.1000 [+0.1000, +0.1000] over 4 users"
    values = metrics.per_user_values({1: [7, 8], 2: [9]}, {1: [8], 2: [5], 3: []}, cold_items=[5],
                                     cold_rankings={2: [5]})
    assert values["ndcg@10"] == {1: pytest.approx(1 / math.log2(3)), 2: 0.0}
    assert values["cold_only_recall@20"] == {2: 1.0} and values["cold_in_top20"] == {2: 0.0}


def test_delta_reader_yields_exactly_the_fixture_partition(tmp_path):
    lake = str(tmp_path / "lake")
    ts = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    base = {"user_id": 7, "target_ts": ts, "history_texts": [], "item_text": "x"}
    mine = [
        {**base, "example_group": 10, "item_id": 101, "label": 0, "split": "train", "history_item_ids": [103, 102]},
        {**base, "example_group": 10, "item_id": 104, "label": 1, "split": "train", "history_item_ids": [103, 102]},
        {**base, "example_group": 10, "item_id": 105, "label": 0, "split": "train", "history_item_ids": [103, 102]},
        {**base, "example_group": 11, "item_id": 106, "label": 1, "split": "valid", "history_item_ids": [104]},
    ]
    other = [{**base, "example_group": 99, "item_id": 101, "label": 1, "split": "train",
              "history_item_ids": [102]}]
    write_table(lake, FEATURES_EXAMPLES, mine, DS)
    write_table(lake, FEATURES_EXAMPLES, other, OTHER_DS)

    cols = ["example_group", "item_id", "label", "split", "history_item_ids", "target_ts"]
    got = read_partition(lake, FEATURES_EXAMPLES, DS, cols).sort_by("item_id").to_pylist()
    assert got == [{k: r[k] for k in cols} for r in sorted(mine, key=lambda r: r["item_id"])]

    catalogue = Catalogue(np.arange(100, 110), [""] * 10)
    train, valid = read_examples(lake, DS, catalogue)
    assert train.positive.tolist() == [4] and train.negatives.tolist() == [[1, 5]]
    assert train.history.tolist() == [[3, 2]]
    assert valid.positive.tolist() == [6] and valid.history.tolist() == [[4, -1]]
    assert valid.negatives.tolist() == [[-1, -1]]
    assert train.target_ts.tolist() == [int(ts.timestamp() * 1_000_000)]

    with pytest.raises(ValueError, match="no rows for ds=2024-03-02"):
        read_partition(lake, FEATURES_EXAMPLES, "2024-03-02")
    with pytest.raises(FileNotFoundError, match="features.user_history"):
        read_partition(lake, FEATURES_USER_HISTORY, DS)
    with pytest.raises(ValueError, match=r"1 history items are not in features.items, e.g. \[102\]"):
        read_examples(lake, DS, Catalogue(np.asarray([101, 103, 104, 105, 106]), [""] * 5))


def test_history_keeps_most_recent_items_within_token_budget():
    history = np.asarray([[0, 1, 2, 3], [2, -1, -1, -1]])
    lengths = np.asarray([5, 5, 20, 5])
    # Row 0: 5 + 5 fit in 12, item 2 (20 tokens) does not, and nothing after a cut is kept.
    assert truncate_history(history, lengths, 4, 12).tolist() == [[0, 1], [-1, -1]]
    assert truncate_history(history, lengths, 1, 100).tolist() == [[0], [2]]


def test_validation_task_excludes_train_items_and_uses_earliest_valid_history():
    catalogue, train, valid = planted_groups()
    task = validation_task(train, valid)
    assert task.user_ids.tolist() == [1, 2, 3, 4]
    for user, exclude, relevant, history in zip(task.user_ids, task.exclude, task.relevant,
                                                task.history):
        seen = set(train.positive[train.user_ids == user]) | set(
            train.history[train.user_ids == user].ravel()) - {-1}
        assert set(exclude) == seen
        assert set(relevant) == set(valid.positive[valid.user_ids == user]) - seen
        assert set(history) - {-1} <= seen


# ---------------------------------------------------------------------------------------------
# Model behaviour


@pytest.mark.parametrize("trainable_layers", [0, 1, 2])
def test_loss_falls_on_a_fixed_batch(base_model, trainable_layers):
    torch.manual_seed(0)
    catalogue, train, _ = planted_groups()
    teacher, tokenizer = tiny_teacher(base_model, ITEM_IDS, trainable_layers=trainable_layers)
    tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
    device = torch.device("cpu")
    text = ItemText(teacher, tokens, catalogue.item_ids, device, bf16=False)
    batch = make_batch(train, future_targets(train, 3), np.arange(len(train)), tokens.lengths, 5,
                       40, device)
    layers = teacher.items.layers
    frozen_before = [p.detach().clone() for p in layers[: 2 - trainable_layers].parameters()]
    trained_before = [p.detach().clone() for p in layers[2 - trainable_layers :].parameters()]
    optimizer = torch.optim.AdamW(param_groups(teacher, TrainOptions(lr=1e-2, bert_lr=1e-3)))
    teacher.train()
    parts = []
    for _ in range(40):
        loss, part = batch_loss(teacher, text, batch, TrainOptions(id_dropout=0.0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        parts.append(part)
    assert parts[-1]["loss"] < 0.5 * parts[0]["loss"]
    frozen_after = list(layers[: 2 - trainable_layers].parameters())
    trained_after = list(layers[2 - trainable_layers :].parameters())
    assert all(torch.equal(a, b) for a, b in zip(frozen_before, frozen_after))
    assert all(not torch.equal(a, b) for a, b in zip(trained_before, trained_after)
               if a.dim() == 2)


@pytest.mark.parametrize("trainable_layers", [0, 1])
def test_frozen_cache_matches_the_full_encoder(base_model, trainable_layers):
    catalogue, _, _ = planted_groups()
    teacher, tokenizer = tiny_teacher(base_model, ITEM_IDS, trainable_layers=trainable_layers)
    tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
    device = torch.device("cpu")
    cached = ItemText(teacher, tokens, catalogue.item_ids, device, bf16=False)
    rows = np.asarray([3, 0, 17, 9])
    teacher.eval()
    with torch.no_grad():
        full = text_from_tokens(teacher, tokens, device)(rows)
        # Token states below trainable layers are cached in bf16: equal up to its rounding.
        tolerance = 0 if trainable_layers == 0 else 2e-2
        assert torch.allclose(cached(rows), full, atol=tolerance, rtol=0)


def test_pooling_adapter_starts_as_mean_pooling_and_learns_on_cached_token_states(base_model):
    catalogue, train, _ = planted_groups()
    plain, tokenizer = tiny_teacher(base_model, ITEM_IDS)
    adapted, _ = tiny_teacher(base_model, ITEM_IDS, adapter_rank=4, adapter_heads=2)
    tokens = tokenize(tokenizer, catalogue.texts, plain.cfg.max_item_tokens)
    device = torch.device("cpu")
    rows = np.arange(len(ITEM_IDS))
    with torch.no_grad():
        assert torch.allclose(text_from_tokens(adapted, tokens, device)(rows),
                              text_from_tokens(plain, tokens, device)(rows), atol=1e-6)
    text = ItemText(adapted, tokens, catalogue.item_ids, device, bf16=False)
    # Mean-pooled vectors and the token states on the adapter's 4 principal directions.
    assert text.cache.shape == (len(ITEM_IDS), 32) and text.reduced.shape[-1] == 4
    assert adapted.items.adapter_basis.abs().sum() > 0
    frozen = [p.detach().clone() for p in adapted.items.layers.parameters()]
    fit(adapted, tokens, catalogue.item_ids, train, None,
        TrainOptions(batch_groups=8, epochs=4, lr=1e-2, id_dropout=0.0), device)
    assert adapted.items.adapter_query.abs().sum() > 0
    assert adapted.items.adapter_out.weight.abs().sum() > 0
    assert all(torch.equal(a, b) for a, b in zip(frozen, adapted.items.layers.parameters()))
    with torch.no_grad():  # the cached path is the full encoder's, trained adapter included
        assert torch.allclose(text(rows), text_from_tokens(adapted, tokens, device)(rows), atol=1e-5)


def test_pooling_adapter_caches_under_bf16_as_under_fp32(base_model):
    # bf16 is the CPU default where the CPU multiplies it; the adapter's cache must build there.
    catalogue, _, _ = planted_groups()
    adapted, tokenizer = tiny_teacher(base_model, ITEM_IDS, adapter_rank=4, adapter_heads=2)
    tokens = tokenize(tokenizer, catalogue.texts, adapted.cfg.max_item_tokens)
    device = torch.device("cpu")
    full = ItemText(adapted, tokens, catalogue.item_ids, device, bf16=False)
    half = ItemText(adapted, tokens, catalogue.item_ids, device, bf16=True)
    assert half.reduced.dtype == torch.float32
    assert torch.allclose(half.reduced, full.reduced, atol=0.05)
    assert torch.allclose(half.cache, full.cache, atol=0.05)


def test_cold_only_adapter_leaves_items_with_an_id_on_plain_mean_pooling(base_model):
    catalogue, _, _ = planted_groups()
    known = ITEM_IDS[:-2]  # the last two items are cold: no id embedding
    plain, tokenizer = tiny_teacher(base_model, known)
    adapted, _ = tiny_teacher(base_model, known, adapter_rank=4, adapter_heads=2,
                              adapter_cold_only=True)
    tokens = tokenize(tokenizer, catalogue.texts, plain.cfg.max_item_tokens)
    device = torch.device("cpu")
    rows = np.arange(len(ITEM_IDS))
    text = ItemText(adapted, tokens, catalogue.item_ids, device, bf16=False)
    with torch.no_grad():
        torch.manual_seed(0)  # a trained adapter and id embeddings, the same in both teachers
        adapted.items.adapter_query.normal_()
        adapted.items.adapter_out.weight.normal_()
        adapted.items.id_embedding.weight[1:].normal_()
        plain.items.id_embedding.weight.copy_(adapted.items.id_embedding.weight)
        id_rows = adapted.items.id_rows(torch.as_tensor(catalogue.item_ids))
        got = adapted.items.combine(text(rows), id_rows)
        want = plain.items.combine(text_from_tokens(plain, tokens, device)(rows), id_rows)
    warm = id_rows > 0
    assert warm.sum() == len(known)
    assert torch.allclose(got[warm], want[warm], atol=1e-5)
    assert not torch.allclose(got[~warm], want[~warm], atol=1e-2)  # cold rows read the adapter
    with pytest.raises(ValueError, match="adapter_rank"):  # no adapter: a flag doing nothing
        tiny_teacher(base_model, known, adapter_cold_only=True)


def test_id_dropout_sends_items_to_the_zero_text_only_row():
    torch.manual_seed(0)
    rows = torch.arange(1, 1001)
    dropped = dropped_ids(rows, 0.3)
    assert set(dropped.tolist()) - set(rows.tolist()) == {0}
    assert 0.25 < (dropped == 0).float().mean().item() < 0.35
    assert torch.equal(dropped_ids(rows, 0.0), rows)


def test_overfits_a_planted_dataset(base_model):
    catalogue, train, _ = planted_groups()
    teacher, tokenizer = tiny_teacher(base_model, ITEM_IDS, trainable_layers=1)
    tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
    options = TrainOptions(batch_groups=8, epochs=40, lr=1e-2, bert_lr=1e-3, seed=1)
    fit(teacher, tokens, catalogue.item_ids, train, None, options, torch.device("cpu"))
    device = torch.device("cpu")
    vecs = item_vectors(teacher, text_from_tokens(teacher, tokens, device), catalogue.item_ids,
                        tokens.lengths, device, bf16=False)
    users = user_vectors(teacher, vecs, train.history, tokens.lengths, bf16=False)
    pos = (users * vecs[train.positive]).sum(-1)
    neg = (users.unsqueeze(1) * vecs[train.negatives]).sum(-1)
    assert bool((pos.unsqueeze(1) > neg).all())


def test_early_stopping_keeps_the_best_validation_weights(base_model):
    catalogue, train, valid = planted_groups()
    task = validation_task(train, valid)
    torch.manual_seed(0)  # the user tower's initial weights: not whatever an earlier test left
    teacher, tokenizer = tiny_teacher(base_model, ITEM_IDS, trainable_layers=1)
    tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
    options = TrainOptions(batch_groups=8, epochs=20, lr=1e-2, eval_every=3, patience=3, seed=1)
    device = torch.device("cpu")
    result = fit(teacher, tokens, catalogue.item_ids, train, task, options, device)
    curve = [p["ndcg@10"] for p in result.valid_curve]
    assert result.best_valid_ndcg == max(curve) > 0.3  # chance is about 0.15
    assert result.best_step == result.valid_curve[curve.index(max(curve))]["step"]
    # Stopped `patience` evaluations after the best one, or ran to the end.
    assert len(curve) - 1 - curve.index(max(curve)) == 3 or result.steps == 60
    text = ItemText(teacher, tokens, catalogue.item_ids, device, bf16=False)
    assert evaluate_task(teacher, text, task, tokens.lengths, bf16=False)["ndcg@10"] == \
        result.best_valid_ndcg


def test_fit_is_seeded(base_model):
    catalogue, train, _ = planted_groups()
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        teacher, tokenizer = tiny_teacher(base_model, ITEM_IDS, trainable_layers=1, dropout=0.1)
        tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
        fit(teacher, tokens, catalogue.item_ids, train, None,
            TrainOptions(batch_groups=4, max_steps=3, seed=5), torch.device("cpu"))
        outs.append(teacher.users.out.weight.detach().clone())
    assert torch.equal(outs[0], outs[1])


# ---------------------------------------------------------------------------------------------
# Artifacts


def scores_of(teacher, tokenizer, catalogue, history):
    device = torch.device("cpu")
    tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
    vecs = item_vectors(teacher, text_from_tokens(teacher, tokens, device), catalogue.item_ids,
                        tokens.lengths, device, bf16=False)
    return teacher.score(user_vectors(teacher, vecs, history, tokens.lengths, bf16=False), vecs)


def test_save_and_load_give_identical_scores(base_model, tmp_path):
    catalogue, train, _ = planted_groups()
    teacher, tokenizer = tiny_teacher(base_model, ITEM_IDS[:12], trainable_layers=1)
    with torch.no_grad():  # move every weight off its initial value, as training would
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    teacher.eval()
    before = scores_of(teacher, tokenizer, catalogue, train.history)
    save_model(teacher, tmp_path / "art", tokenizer=tokenizer)
    loaded, loaded_tokenizer, config = load_teacher(tmp_path / "art")
    assert config["teacher"]["num_known_items"] == 12
    assert loaded.items.id_rows(torch.tensor([ITEM_IDS[0], ITEM_IDS[15]])).tolist() == [1, 0]
    assert torch.equal(before, scores_of(loaded, loaded_tokenizer, catalogue, train.history))


def test_pickle_weights_are_refused(base_model, tmp_path):
    teacher, tokenizer = tiny_teacher(base_model, ITEM_IDS)
    art = save_model(teacher, tmp_path / "art", tokenizer=tokenizer)
    state = {k: v.numpy() for k, v in teacher.state_dict().items()}
    (art / "model.safetensors").unlink()
    with (art / "pytorch_model.bin").open("wb") as f:
        pickle.dump(state, f)
    with pytest.raises(ArtifactError, match=r"refusing.*pickle.*pytorch_model\.bin"):
        load_teacher(art)
    with pytest.raises(ArtifactError, match="refusing.*pickle"):
        load_teacher(art / "pytorch_model.bin")
    # A pickle renamed to model.safetensors is still a pickle.
    (art / "pytorch_model.bin").rename(art / "model.safetensors")
    with pytest.raises(ArtifactError, match="refusing.*pickle"):
        load_teacher(art)


def test_missing_or_corrupt_artifact_fails_naming_the_path(base_model, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ArtifactError, match=re.escape(f"not found: {missing}")):
        load_teacher(missing)
    teacher, tokenizer = tiny_teacher(base_model, ITEM_IDS)
    art = save_model(teacher, tmp_path / "art", tokenizer=tokenizer)
    weights = art / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtifactError, match=re.escape(f"corrupt weights file {weights}")):
        load_teacher(art)
    save_model(teacher, art, tokenizer=tokenizer)
    (art / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=re.escape(f"{art / 'config.json'} is missing or invalid")):
        load_teacher(art)


# ---------------------------------------------------------------------------------------------
# Entry points


def test_train_then_evaluate_end_to_end(base_model, tiny_lake, capsys):
    args = ["--lake", tiny_lake, "--ds", DS, "--base-model", base_model, "--device", "cpu",
            "--max-steps", "4", "--batch-groups", "8", "--eval-every", "2", "--max-item-tokens", "8",
            "--trainable-layers", "1", "--user-heads", "2"]
    assert train_teacher.main(args) == 0
    art = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert art.parent.parent == Path(tiny_lake) / "models" and art.name == "teacher"
    assert re.fullmatch(rf"{DS}-\d{{6}}", art.parent.name)
    files = {p.name for p in art.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "metrics.json",
            "curves.png"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    summary = json.loads((art / "metrics.json").read_text())
    assert [p["step"] for p in summary["valid_curve"]] == [2, 4]
    assert summary["samples_per_s"] > 0 and summary["encoder_tokens_per_s"] > 0
    train_rows = [r for r in planted_examples() if r["split"] == "train"]
    known = {r["item_id"] for r in train_rows} | {h for r in train_rows for h in r["history_item_ids"]}
    assert summary["known_items"] == len(known)

    assert evaluate_teacher.main(["--lake", tiny_lake, "--ds", DS, "--device", "cpu"]) == 0
    result = json.loads((art / f"evaluation-{DS}.json").read_text())
    assert (result["evaluated_users"], result["cold_users"], result["cold_test_interactions"]) == \
        (4, 4, 8)
    for key in ("ndcg@10", "recall@20", "coverage@10", "cold_recall@20"):
        assert 0.0 <= result[key] <= 1.0
    with pytest.raises(SystemExit, match="already exists"):
        train_teacher.main([*args, "--version", art.parent.name])

    # Distil, with the no-teacher ablation that evaluation runs measure distillation against.
    distill.main(["--lake", tiny_lake, "--ds", DS, "--teacher-dir", str(art), "--dim", "8",
                  "--max-steps", "2", "--batch-groups", "8", "--no-teacher-ablation"])
    ablation = json.loads((art.parent / "student-no-teacher" / "metrics.json").read_text())
    assert set(ablation["valid_ndcg@10_by_lr"]) == {str(lr) for lr in distill.NO_TEACHER_LRS}
    saved = json.loads((art.parent / "student-no-teacher" / "config.json").read_text())
    assert saved["options"]["kl_weight"] == 0.0
    # --popularity-beta auto: chosen on the validation grid, and the ablation ranks with it too.
    served = json.loads((art.parent / "student" / "metrics.json").read_text())
    assert set(served["valid_by_popularity_beta"]) == {str(b) for b in debias.BETAS}
    beta = json.loads((art.parent / "student" / "config.json").read_text())["student"][
        "popularity_beta"]
    assert beta == served["popularity_beta"] == saved["student"]["popularity_beta"]
    gain = distillation_gain(tiny_lake, DS, art.parent.name)
    assert set(gain) == {"ndcg@10", "cold_only_recall@20"}
    for paired in gain.values():
        assert paired["users"] == 4
        assert paired["ci_low"] <= paired["difference"] <= paired["ci_high"]


def test_refit_learns_the_validation_rows_and_keeps_the_validated_twin(base_model, tiny_lake,
                                                                      capsys):
    args = ["--lake", tiny_lake, "--ds", DS, "--base-model", base_model, "--device", "cpu",
            "--max-steps", "4", "--batch-groups", "8", "--eval-every", "2", "--max-item-tokens", "8",
            "--user-heads", "2", "--refit"]
    assert train_teacher.main(args) == 0
    served = Path(capsys.readouterr().out.strip().splitlines()[-1])
    twin = served.with_name("teacher-validation")
    validated = json.loads((twin / "metrics.json").read_text())
    refitted = json.loads((served / "metrics.json").read_text())
    assert "refit" not in validated and validated["train_groups"] == 24
    # As long as the validation run's best step, over all 28 groups (3 steps of 8 a pass of
    # the 24 train groups, 4 a pass of all 28).
    best = validated["best_step"]
    assert refitted["refit"]["train_groups"] == 28
    assert refitted["refit"]["epochs"] == pytest.approx(best / 3)
    assert refitted["refit"]["steps"] == math.ceil(best / 3 * 4)
    assert json.loads((served / "config.json").read_text())["refit"] is True

    distill.main(["--lake", tiny_lake, "--ds", DS, "--teacher-dir", str(served), "--dim", "8",
                  "--max-steps", "2", "--batch-groups", "8"])
    # The validation run's soft targets come from the twin, for the 24 train groups only; the
    # refitted teacher's, for all 28, train the student that is saved.
    read = re.findall(r"teacher vectors of (\S+) for \d+ items and (\d+) groups",
                      capsys.readouterr().err)
    assert sorted(read) == [("teacher", "28"), ("teacher-validation", "24")]
    student = json.loads((served.parent / "student" / "metrics.json").read_text())
    assert student["refit"]["train_groups"] == 28
    assert student["refit"]["epochs"] == pytest.approx(student["best_step"] / 3)
    assert json.loads((served.parent / "student" / "config.json").read_text())["refit"] is True
    distill.main(["--lake", tiny_lake, "--ds", DS, "--teacher-dir", str(served), "--dim", "8",
                  "--max-steps", "2", "--batch-groups", "8", "--no-refit", "--popularity-beta",
                  "0"])
    assert "refit" not in json.loads((served.parent / "student" / "metrics.json").read_text())


def test_concat_groups_pads_the_narrower_part():
    _, train, valid = planted_groups()
    narrow = Groups(valid.user_ids, valid.positive, valid.negatives[:, :1], valid.history[:, :2],
                    valid.target_ts)
    both = concat_groups(train, narrow)
    assert len(both) == len(train) + len(valid)
    np.testing.assert_array_equal(both.negatives[len(train):, 1:], -1)
    np.testing.assert_array_equal(both.history[len(train):, :2], valid.history[:, :2])
    np.testing.assert_array_equal(both.history[len(train):, 2], -1)
    np.testing.assert_array_equal(both.positive, np.r_[train.positive, valid.positive])


def test_auto_precision_is_bf16_only_where_the_cpu_multiplies_bf16(monkeypatch):
    flags = "flags\t\t: fpu sse avx512f avx512bw avx512vl"
    assert not runtime.cpu_multiplies_bf16(flags)
    assert runtime.cpu_multiplies_bf16(flags + " avx512_bf16 avx512_vnni")
    assert runtime.cpu_multiplies_bf16(flags + " amx_bf16 amx_tile")
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_multiplies_bf16", lambda: False)
    assert not runtime.use_bf16("auto", cpu) and runtime.use_bf16("bf16", cpu)
    monkeypatch.setattr(runtime, "cpu_multiplies_bf16", lambda: True)
    assert runtime.use_bf16("auto", cpu) and not runtime.use_bf16("fp32", cpu)


def test_co_consumed_pairs_join_each_target_to_the_items_just_before_it():
    groups = Groups(user_ids=np.asarray([1, 2]), positive=np.asarray([4, 2]),
                    negatives=np.full((2, 1), -1), history=np.asarray([[3, 1, -1], [2, 5, 6]]),
                    target_ts=np.zeros(2, dtype=np.int64))
    # Window 2: the padding and the target paired with itself are dropped, item 6 is too far back.
    assert co_consumed_pairs(groups, 2).tolist() == [[4, 3], [4, 1], [2, 5]]


def test_text_tuning_draws_co_consumed_items_together_and_tunes_only_the_top_layer(base_model):
    catalogue, train, _ = planted_groups()
    teacher, tokenizer = tiny_teacher(base_model, ITEM_IDS)
    tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
    device, rows = torch.device("cpu"), np.arange(len(ITEM_IDS))
    colour = np.asarray(ITEM_IDS) % 2

    def same_minus_other_colour() -> float:
        with torch.no_grad():
            vecs = text_from_tokens(teacher, tokens, device)(rows)
        sim = (vecs @ vecs.T).numpy()
        same = colour[:, None] == colour[None, :]
        off = ~np.eye(len(rows), dtype=bool)
        return sim[same & off].mean() - sim[~same].mean()

    before = same_minus_other_colour()
    bottom = [p.detach().clone() for p in teacher.items.layers[0].parameters()]
    top = [p.detach().clone() for p in teacher.items.layers[1].parameters()]
    curve = tune_item_text(teacher.items, tokens, co_consumed_pairs(train, 3),
                           TextTuning(steps=60, layers=1, lr=3e-3, batch_pairs=8), device,
                           False).train_curve
    # Users only ever consume one colour: tuning on what they consume together separates them.
    assert same_minus_other_colour() > before + 0.1
    assert curve[-1]["loss"] < curve[0]["loss"]
    assert all(torch.equal(a, b) for a, b in zip(bottom, teacher.items.layers[0].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(top, teacher.items.layers[1].parameters()))
    assert not any(p.requires_grad for p in teacher.items.layers.parameters())
