"""Lake rows -> numpy arrays the teacher trains and ranks on.

Everything is indexed by catalogue row (position in `features.items` sorted by item_id), so the
texts are tokenised once per item and a history or candidate is just an int array.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contract.delta_reader import padded_lists, read_partition, timestamps_us
from contract.tables import FEATURES_EXAMPLES, FEATURES_ITEMS, FEATURES_TRAIN, FEATURES_USER_HISTORY

# History arrays are read up to this many items; the model's own limits cut further.
MAX_HISTORY_READ = 512


@dataclass
class Catalogue:
    item_ids: np.ndarray  # [N] int64, sorted
    texts: list[str]

    def rows(self, item_ids: np.ndarray, what: str = "items") -> np.ndarray:
        """Raw item ids -> catalogue rows (-1 stays -1, the padding of history matrices)."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        pos = np.searchsorted(self.item_ids, item_ids).clip(max=len(self.item_ids) - 1)
        found = (self.item_ids[pos] == item_ids) | (item_ids == -1)
        if not found.all():
            missing = np.unique(item_ids[~found])
            raise ValueError(f"{len(missing)} {what} are not in features.items, e.g. {missing[:5].tolist()}")
        return np.where(item_ids == -1, -1, pos)


@dataclass
class Tokens:
    ids: np.ndarray  # [N, T] int64, padded with the tokenizer's pad id
    mask: np.ndarray  # [N, T] int64 0/1

    @property
    def lengths(self) -> np.ndarray:
        return self.mask.sum(1)


@dataclass
class Groups:
    """One row per example_group: a positive, its sampled negatives and their shared history."""

    user_ids: np.ndarray  # [G]
    positive: np.ndarray  # [G] catalogue rows
    negatives: np.ndarray  # [G, K] catalogue rows, -1 padded (groups may differ in K)
    history: np.ndarray  # [G, L] catalogue rows, most recent first, -1 padded
    target_ts: np.ndarray  # [G] int64 microseconds

    def __len__(self) -> int:
        return len(self.positive)

    def take(self, index: np.ndarray) -> Groups:
        return Groups(*(getattr(self, f)[index] for f in
                        ("user_ids", "positive", "negatives", "history", "target_ts")))

    def known_rows(self) -> np.ndarray:
        """Sorted catalogue rows these groups mention: the items that get id embeddings."""
        rows = np.concatenate([self.positive, self.negatives.ravel(), self.history.ravel()])
        return np.unique(rows[rows >= 0])


def concat_groups(*parts: Groups) -> Groups:
    """The groups of every part, in order; -1 pads the narrower negatives and histories."""
    def stacked(field: str) -> np.ndarray:
        arrays = [getattr(p, field) for p in parts]
        width = max(a.shape[1] for a in arrays)
        return np.concatenate([np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=-1)
                               for a in arrays])

    return Groups(np.concatenate([p.user_ids for p in parts]),
                  np.concatenate([p.positive for p in parts]), stacked("negatives"),
                  stacked("history"), np.concatenate([p.target_ts for p in parts]))


@dataclass
class RankingTask:
    """Users to rank the whole catalogue for, with what to exclude and what counts as a hit."""

    user_ids: np.ndarray  # [U]
    history: np.ndarray  # [U, L] catalogue rows, most recent first, -1 padded
    exclude: list[np.ndarray]  # per user: catalogue rows never recommended (their train items)
    relevant: list[np.ndarray]  # per user: catalogue rows that count as hits


def load_catalogue(lake: str, ds: str) -> Catalogue:
    # features.items: the point-in-time text of every item, the only item text models read.
    items = read_partition(lake, FEATURES_ITEMS, ds, ["item_id", "text"]).sort_by("item_id")
    ids = items["item_id"].to_numpy().astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"features.items ds={ds} has duplicate item_id values")
    texts = [t or "" for t in items["text"].to_pylist()]
    return Catalogue(ids, texts)


def artifact_token_ids(model_dir, texts: list[str], max_tokens: int) -> np.ndarray:
    """[N, max_tokens] int64: `tokenize(AutoTokenizer.from_pretrained(model_dir), ...).ids`, the
    ids a saved artifact's items are encoded with, from its tokenizer.json by the `tokenizers`
    library alone. transformers wraps the same Rust tokenizer but takes seconds to import and
    three times as long to encode a catalogue (0.9 s of the 1.2 s the scoring driver spent on
    ml-latest-small's 9,742 items), and the artifact consumers need nothing else of it.
    tests/unit/test_tokens.py checks that both give the same ids."""
    from tokenizers import Tokenizer

    config = json.loads((Path(model_dir) / "tokenizer_config.json").read_text())
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    pad = config.get("pad_token", "[PAD]")
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(length=max_tokens, pad_id=tokenizer.token_to_id(pad), pad_token=pad)
    encoded = tokenizer.encode_batch(texts)
    return np.array([e.ids for e in encoded], dtype=np.int64).reshape(len(texts), max_tokens)


def tokenize(tokenizer, texts: list[str], max_tokens: int) -> Tokens:
    enc = tokenizer(texts, truncation=True, max_length=max_tokens, padding="max_length",
                    return_tensors="np")
    return Tokens(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))


def truncate_history(history: np.ndarray, lengths: np.ndarray, max_items: int, budget: int
                     ) -> np.ndarray:
    """Keep the most recent items while they number <= max_items and their tokens fit budget."""
    history = history[:, :max_items]
    tokens = np.where(history >= 0, lengths[history.clip(min=0)], 0)
    keep = (history >= 0) & (np.cumsum(tokens, axis=1) <= budget)
    # Truncation is a prefix cut, so a kept item never follows a dropped one.
    keep = np.cumprod(keep, axis=1).astype(bool)
    out = np.where(keep, history, -1)
    width = max(int(keep.sum(1).max(initial=0)), 1)
    return out[:, :width]


def read_examples(lake: str, ds: str, catalogue: Catalogue) -> tuple[Groups, Groups]:
    """(train groups, valid groups) of features.training_examples for ds."""
    cols = ["example_group", "user_id", "item_id", "label", "target_ts", "split", "history_item_ids"]
    table = read_partition(lake, FEATURES_EXAMPLES, ds, cols)
    table = table.sort_by([("example_group", "ascending"), ("label", "descending")])
    group = table["example_group"].to_numpy()
    label = table["label"].to_numpy()
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sizes = np.diff(np.r_[starts, len(group)])
    positives_per_group = np.add.reduceat(label == 1, starts)
    if (positives_per_group != 1).any():
        bad = group[starts[positives_per_group != 1]]
        raise ValueError(f"{len(bad)} example groups do not have exactly one positive, "
                         f"e.g. {bad[:5].tolist()}")
    head = table.take(pa.array(starts))
    item_rows = catalogue.rows(table["item_id"].to_numpy(), "candidate items")
    within = np.arange(len(group)) - np.repeat(starts, sizes)
    negatives = np.full((len(starts), max(int(sizes.max()) - 1, 1)), -1, dtype=np.int64)
    is_neg = within > 0
    negatives[np.repeat(np.arange(len(starts)), sizes)[is_neg], within[is_neg] - 1] = item_rows[is_neg]
    history = catalogue.rows(padded_lists(head["history_item_ids"], MAX_HISTORY_READ),
                             "history items")
    groups = Groups(
        user_ids=head["user_id"].to_numpy().astype(np.int64),
        positive=item_rows[starts],
        negatives=negatives,
        history=history[:, : max(int((history >= 0).sum(1).max()), 1)],
        target_ts=timestamps_us(head["target_ts"]),
    )
    split = np.asarray(head["split"].to_pylist())
    unknown = set(np.unique(split)) - {"train", "valid"}
    if unknown:
        raise ValueError(f"features.training_examples has unknown split values {sorted(unknown)}")
    return groups.take(np.flatnonzero(split == "train")), groups.take(np.flatnonzero(split == "valid"))


def future_targets(groups: Groups, window: int) -> np.ndarray:
    """[G, window] each group's positive, then the same user's next train positives in time
    order (-1 past the user's last one): the targets of models.losses.future_softmax.

    Only `groups` are read, so train targets never reach into the validation groups.
    """
    order = np.lexsort((np.arange(len(groups)), groups.target_ts, groups.user_ids))
    users, positives = groups.user_ids[order], groups.positive[order]
    out = np.full((len(groups), window), -1, dtype=np.int64)
    for ahead in range(min(window, len(groups))):
        later = np.full(len(groups), -1, dtype=np.int64)
        same_user = users[ahead:] == users[: len(groups) - ahead]
        later[: len(groups) - ahead] = np.where(same_user, positives[ahead:], -1)
        out[order, ahead] = later
    return out


@dataclass
class UserItems:
    """Every catalogue row each user interacted with in some groups (their positives and
    histories), for masking a user's other items out of a training softmax."""

    users: np.ndarray  # [U] sorted user ids
    starts: np.ndarray  # [U + 1] offsets of each user's rows in `rows`
    rows: np.ndarray  # catalogue rows, grouped by user

    @classmethod
    def of(cls, groups: Groups) -> UserItems:
        width = groups.history.shape[1]
        user_ids = np.concatenate([groups.user_ids, np.repeat(groups.user_ids, width)])
        pairs = _user_row_pairs(user_ids, np.concatenate([groups.positive, groups.history.ravel()]))
        users, starts = np.unique(pairs[:, 0], return_index=True)
        return cls(users, np.r_[starts, len(pairs)], pairs[:, 1])

    def matrix(self, user_ids: np.ndarray, unmasked: np.ndarray) -> np.ndarray:
        """[B, M] each user's rows, -1 padded, leaving out that row's `unmasked` ([B, F]) ones."""
        pos = np.searchsorted(self.users, user_ids).clip(max=len(self.users) - 1)
        found = self.users[pos] == user_ids
        lo, hi = self.starts[pos], np.where(found, self.starts[pos + 1], self.starts[pos])
        counts = hi - lo
        out = np.full((len(user_ids), max(int(counts.max(initial=0)), 1)), -1, dtype=np.int64)
        row = np.repeat(np.arange(len(user_ids)), counts)
        col = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        out[row, col] = self.rows[np.repeat(lo, counts) + col]
        kept = (out[:, :, None] == unmasked[:, None, :]).any(-1)
        return np.where(kept, -1, out)


def _user_row_pairs(user_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[P, 2] the distinct (user, catalogue row) pairs, sorted by user then row; -1 rows dropped."""
    keep = rows >= 0
    return np.unique(np.stack([user_ids[keep], rows[keep]], 1), axis=0)


def _per_user(users: np.ndarray, user_ids: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """Group (user, row) pairs into one unique-row array per entry of `users`."""
    pairs = _user_row_pairs(user_ids, rows)
    lo = np.searchsorted(pairs[:, 0], users, "left")
    hi = np.searchsorted(pairs[:, 0], users, "right")
    return [pairs[a:b, 1] for a, b in zip(lo, hi)]


def validation_task(train: Groups, valid: Groups) -> RankingTask:
    """Early-stopping task: from each user's earliest valid history, find their valid targets.

    The earliest valid group's history precedes every valid target, so no target leaks into
    it; every item in the user's train groups (targets and histories) is excluded, as the
    evaluation protocol excludes train items.
    """
    order = np.lexsort((valid.target_ts, valid.user_ids))
    users, first = np.unique(valid.user_ids[order], return_index=True)
    history = valid.history[order[first]]
    n_hist = train.history.shape[1]
    seen_users = np.concatenate([train.user_ids, np.repeat(train.user_ids, n_hist),
                                 np.repeat(users, history.shape[1])])
    seen_rows = np.concatenate([train.positive, train.history.ravel(), history.ravel()])
    exclude = _per_user(users, seen_users, seen_rows)
    targets = _per_user(users, valid.user_ids, valid.positive)
    relevant = [np.setdiff1d(t, e) for t, e in zip(targets, exclude)]
    return RankingTask(users, history, exclude, relevant)


def train_interactions(lake: str, ds: str, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, catalogue rows) of every features.train_interactions row for ds."""
    train = read_partition(lake, FEATURES_TRAIN, ds, ["user_id", "item_id"])
    return (train["user_id"].to_numpy().astype(np.int64),
            catalogue.rows(train["item_id"].to_numpy(), "train items"))


def train_popularity(lake: str, ds: str, catalogue: Catalogue) -> np.ndarray:
    """[N] train interactions of every catalogue row (0: a cold item)."""
    _, rows = train_interactions(lake, ds, catalogue)
    return np.bincount(rows, minlength=len(catalogue.item_ids))


def validation_popularity(popularity: np.ndarray, valid: Groups) -> np.ndarray:
    """`popularity` [N] (every train interaction) less the validation targets: what was known
    at the validation cut-off. Each validation interaction is the positive of one group, but for
    one at its user's very first moment (no history, so no group), which stays counted."""
    return (popularity - np.bincount(valid.positive, minlength=len(popularity))).clip(min=0)


def evaluation_task(lake: str, ds: str, catalogue: Catalogue, test: pa.Table) -> RankingTask:
    """Protocol task: rank for users with test interactions, from features.user_history."""
    hist = read_partition(lake, FEATURES_USER_HISTORY, ds, ["user_id", "history_item_ids"])
    train_users, train_rows = train_interactions(lake, ds, catalogue)
    test_users = test["user_id"].to_numpy().astype(np.int64)
    users = np.unique(test_users)
    hist_users = hist["user_id"].to_numpy().astype(np.int64)
    order = np.argsort(hist_users)
    pos = np.searchsorted(hist_users[order], users).clip(max=len(order) - 1)
    # A test user without a history row is ranked from the learned CLS vector alone.
    found = hist_users[order][pos] == users
    rows = catalogue.rows(padded_lists(hist["history_item_ids"], MAX_HISTORY_READ), "history items")
    history = np.where(found[:, None], rows[order][pos], -1)
    exclude = _per_user(users, train_users, train_rows)
    targets = _per_user(users, test_users, catalogue.rows(test["item_id"].to_numpy(), "test items"))
    relevant = [np.setdiff1d(t, e) for t, e in zip(targets, exclude)]
    return RankingTask(users, history, exclude, relevant)


def train_item_ids(lake: str, ds: str) -> np.ndarray:
    """Distinct items with at least one train interaction (the rest are cold)."""
    train = read_partition(lake, FEATURES_TRAIN, ds, ["item_id"])
    return np.unique(pc.unique(train["item_id"]).to_numpy().astype(np.int64))
