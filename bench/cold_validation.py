"""How well are items nobody has interacted with ranked? Checked inside the training data.

    python bench/cold_validation.py --lake L --ds D [train_teacher flags]
        [--cold-items 1500] [--cold-seed 0,1,2] [--students 0.1,0.3,0.1+nocoldkl,0.1+borrow]
        [--student-epochs 4] [--neighbours 0:0,20:0.5] [--release-slack 0,1,2]
        [--save run.json] [--against other.json] [--also earlier.json]

The validation split has almost no cold items of its own (on ml-latest-small 4 users have a
validation interaction on an item without train interactions), so no cold-start setting could be
chosen on it. This makes some: `--cold-items` items drawn at random (seeded) among the rare ones,
those with 1 to 3 train and validation interactions together (the test's cold items are rare
items: ml-latest-small's 1,496 hold 1,682 test interactions), are removed from every training
row: as targets, as sampled negatives and from every history, train and validation, so no model
gives them an id embedding or learns from them. Then, with the test split never read:

- the teacher trains on what is left, early-stopping on the validation split as train_teacher
  does (no refit);
- each student of `--students` is distilled from it with the served student's defaults but its
  id dropout (`0.3`), with `+nocoldkl` (`0.1+nocoldkl`) no KL on the items without an id
  (DistillOptions.kl_on_cold), with `+borrow` the borrowing below in training too
  (DistillOptions.borrow_in_training);
- each student also ranks with each `--neighbours` K:W in place of its own cold neighbours
  (DistillOptions.cold_neighbours / cold_neighbour_weight: what an item without an id borrows
  from its K textual neighbours' id embeddings, at weight W; `0:0` is text alone). They only
  change how the trained student's item vectors are made, so the students are not retrained;
- with `--release-slack S,...`, the teacher, the served student and TF-IDF also rank as if
  every item released more than S years after the user's validation cut-off (the year of their
  last train interaction) did not exist yet for that user: the release year is the first
  "(YYYY)" of the item text (MovieLens titles end with it; an item without one is never held
  back). The protocol ranks the whole catalogue, also for a user whose train history ended in
  1996; this measures how much of the cold-start gap is items that were not out yet;
- every model, and the TF-IDF baseline, ranks the validation split twice: the whole catalogue
  (NDCG@10, what the warm items decide) and, as the protocol's cold-only Recall@20, only the
  pseudo-cold items, for each user with a validation target among them.

One draw of about 1,500 items leaves about 110 users with a pseudo-cold target, and two draws
have disagreed by 0.06: `--cold-seed 0,1,2` repeats all of the above (a teacher and the students
per draw) for each seed and averages each user's figures over the draws (`pooled`), so each mean
and paired difference counts every draw's users. JVM-free; the figures and paired differences go to stdout.

Two teachers (say frozen text and `--adapter-rank 32`) are two runs of this bench on the same
lake and draws: `--save` writes a run's per-user figures as JSON, and `--against` that file in
the other run pairs each model with its namesake there, user by user (the draws are seeded, so
both runs rank the same users' same targets).

More draws later: `--also` a --save file of an earlier run of the same teacher on other seeds
pools it with this run's draws before anything is printed, saved or paired (each user's figure
is then the mean of the two runs' figures), so `--cold-seed 3,4,5 --also 0-2.json` adds three
draws to three without training the first three again.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace

import numpy as np
import torch

from models import metrics
from models.baselines import tfidf_rankings
from models.data import (
    Catalogue,
    Groups,
    RankingTask,
    load_catalogue,
    read_examples,
    tokenize,
    validation_task,
)
from models.distill import DistillOptions, fit_student, new_student
from models.runtime import resolve_device, use_bf16
from models.scoring import item_vectors, top_k, user_vectors
from models.train_teacher import parse_args, train_on
from models.training import ItemText


def without_items(groups: Groups, drop: np.ndarray, keep_targets: bool) -> Groups:
    """`groups` with the catalogue rows `drop` [N] bool removed from histories (order kept) and
    negatives, and, unless `keep_targets`, the groups whose positive is one of them."""
    history = groups.history
    keep = (history >= 0) & ~drop[history.clip(min=0)]
    order = np.argsort(~keep, axis=1, kind="stable")  # kept items first, in their order
    history = np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(history, order, 1), -1)
    negatives = np.where(drop[groups.negatives.clip(min=0)], -1, groups.negatives)
    out = Groups(groups.user_ids, groups.positive, negatives, history, groups.target_ts)
    return out if keep_targets else out.take(np.flatnonzero(~drop[groups.positive]))


def pseudo_cold(train: Groups, valid: Groups, n_items: int, count: int, seed: int, how: str
                ) -> np.ndarray:
    """Sorted catalogue rows of `count` items: `rare`, drawn at random among those with 1 to 3
    train + validation positives; `newest`, those whose first positive came last."""
    positive = np.concatenate([train.positive, valid.positive])
    if how == "newest":
        first = np.full(n_items, np.iinfo(np.int64).min)
        np.maximum.at(first, positive, -np.concatenate([train.target_ts, valid.target_ts]))
        seen = np.flatnonzero(first > np.iinfo(np.int64).min)
        return np.sort(seen[np.argsort(first[seen], kind="stable")[:count]])
    counts = np.bincount(positive, minlength=n_items)
    rare = np.flatnonzero((counts >= 1) & (counts <= 3))
    return np.sort(np.random.default_rng(seed).choice(rare, min(count, len(rare)), replace=False))


RELEASE_YEAR = re.compile(r"\((\d{4})\)")


def release_years(texts: list[str]) -> np.ndarray:
    """[N] float: the first "(YYYY)" of each item text (a MovieLens title's release year), NaN
    for a text without one."""
    found = (RELEASE_YEAR.search(t) for t in texts)
    return np.array([float(m.group(1)) if m else np.nan for m in found])


def as_of_years(train: Groups, user_ids: np.ndarray) -> np.ndarray:
    """[U] float: the UTC year of each user's last train target (their validation cut-off), NaN
    for a user without one."""
    last = np.full(len(user_ids), np.iinfo(np.int64).min)
    at = np.searchsorted(user_ids, train.user_ids)
    found = (at < len(user_ids)) & (user_ids[at.clip(max=len(user_ids) - 1)] == train.user_ids)
    np.maximum.at(last, at[found], train.target_ts[found])
    years = last.astype("datetime64[us]").astype("datetime64[Y]").astype(np.int64) + 1970
    return np.where(last > np.iinfo(np.int64).min, years.astype(float), np.nan)


def unreleased(years: np.ndarray, as_of: np.ndarray, slack: int) -> list[np.ndarray]:
    """Per user: the catalogue rows released more than `slack` years after their as-of year
    (none where either year is unknown)."""
    return [np.flatnonzero(years > year + slack) for year in as_of]


def released_task(task: RankingTask, held_back: list[np.ndarray]) -> RankingTask:
    """`task` with each user's `held_back` rows excluded as well as their train items."""
    return replace(task, exclude=[np.union1d(e, h) for e, h in zip(task.exclude, held_back)])


def cold_positions(cold_rows: np.ndarray, held_back: list[np.ndarray]) -> list[np.ndarray]:
    """Per user: the positions in `cold_rows` of their `held_back` rows."""
    return [np.flatnonzero(np.isin(cold_rows, h)) for h in held_back]


def figures(ranked: dict, cold_ranked: dict, task: RankingTask, cold_rows: np.ndarray) -> dict:
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    return metrics.per_user_values(ranked, relevant, cold_rows.tolist(), cold_ranked)


def vector_rankings(model, users: torch.Tensor, items: torch.Tensor, task: RankingTask,
                    cold_rows: np.ndarray, cold_exclude: list[np.ndarray] | None = None
                    ) -> tuple[dict, dict]:
    """(user -> top 20 of the whole catalogue minus their seen rows, user -> top 20 cold rows,
    never those at the user's `cold_exclude` positions of `cold_rows`)."""
    full = top_k(model, users, items, task.exclude, 20)
    none = [np.empty(0, dtype=np.int64)] * len(task.user_ids)
    cold = cold_rows[top_k(model, users, items[torch.as_tensor(cold_rows)],
                           none if cold_exclude is None else cold_exclude, 20)]
    return ({int(u): r.tolist() for u, r in zip(task.user_ids, full)},
            {int(u): r.tolist() for u, r in zip(task.user_ids, cold)})


def seeds(value: str) -> list[int]:
    return [int(v) for v in value.split(",")]


def neighbour_grid(value: str) -> list[tuple[int, float]]:
    """`50:0.5,0:0` -> [(50, 0.5), (0, 0.0)]"""
    return [(int(k), float(w)) for k, w in (pair.split(":") for pair in value.split(",") if pair)]


def pooled(draws: dict[int, dict[str, dict[str, dict]]]) -> dict[str, dict[str, dict]]:
    """{seed: {model: {metric: {user: value}}}} -> {model: {metric: {user: mean value}}}: each
    user's figure averaged over the draws in which they have one. The users stay the unit of the
    bootstrap (one user's draws are not independent of each other), and every model of a draw
    has the same users, so the pairs stay pairs."""
    values: dict[str, dict[str, dict]] = {}
    for results in draws.values():
        for name, got in results.items():
            for key, per_user in got.items():
                for user, v in per_user.items():
                    values.setdefault(name, {}).setdefault(key, {}).setdefault(user, []).append(v)
    return {name: {key: {user: float(np.mean(vs)) for user, vs in per_user.items()}
                   for key, per_user in got.items()}
            for name, got in values.items()}


def one_draw(args: argparse.Namespace, mine: argparse.Namespace, seed: int, catalogue: Catalogue,
             train: Groups, valid: Groups, device: torch.device, bf16: bool
             ) -> dict[str, dict[str, dict]]:
    """{model: per_user_values} for the pseudo-cold items of `seed`: TF-IDF, the teacher trained
    without them and each student of `--students` distilled from it."""
    n = len(catalogue.item_ids)
    # Each validation user's clock, from their train rows before any item is hidden from them
    # (validation_task ranks the same users, sorted).
    as_of = as_of_years(train, np.unique(valid.user_ids))
    cold_rows = pseudo_cold(train, valid, n, mine.cold_items, seed, mine.cold_by)
    drop = np.zeros(n, dtype=bool)
    drop[cold_rows] = True
    train, valid = without_items(train, drop, False), without_items(valid, drop, True)
    task = validation_task(train, valid)
    cold_users = sum(bool(drop[r].any()) for r in task.relevant)
    print(f"draw {seed}: {len(cold_rows)} pseudo-cold items; {len(train)} train groups left; "
          f"{len(task.user_ids)} validation users, {cold_users} of them with a pseudo-cold target",
          file=sys.stderr)

    years = release_years(catalogue.texts)
    rules = {}  # rule name -> (task holding back unreleased items, cold positions held back)
    for slack in mine.release_slack:
        held_back = unreleased(years, as_of, slack)
        rules[f" released+{slack}"] = (released_task(task, held_back),
                                       cold_positions(cold_rows, held_back))

    results = {}
    full, cold = tfidf_rankings(catalogue.texts, task, cold_rows)
    results["TF-IDF"] = figures(full, cold, task, cold_rows)
    for rule, (held_task, held_cold) in rules.items():
        full, cold = tfidf_rankings(catalogue.texts, held_task, cold_rows, cold_exclude=held_cold)
        results[f"TF-IDF{rule}"] = figures(full, cold, task, cold_rows)

    teacher, tokenizer, _, _ = train_on(args, catalogue, train, task, device, bf16)
    teacher.eval()
    tokens = tokenize(tokenizer, catalogue.texts, args.max_item_tokens)
    text = ItemText(teacher, tokens, catalogue.item_ids, device, bf16)
    t_items = item_vectors(teacher, text, catalogue.item_ids, tokens.lengths, device, bf16)
    t_valid = user_vectors(teacher, t_items, task.history, tokens.lengths, bf16)
    results["teacher"] = figures(*vector_rankings(teacher, t_valid, t_items, task, cold_rows),
                                 task, cold_rows)
    for rule, (held_task, held_cold) in rules.items():
        results[f"teacher{rule}"] = figures(*vector_rankings(
            teacher, t_valid, t_items, held_task, cold_rows, held_cold), task, cold_rows)
    t_train = user_vectors(teacher, t_items, train.history, tokens.lengths, bf16)

    known = catalogue.item_ids[train.known_rows()]
    for variant in mine.students.split(","):
        rate, *flags = variant.split("+")
        options = replace(DistillOptions(), id_dropout=float(rate), epochs=mine.student_epochs,
                          kl_on_cold="nocoldkl" not in flags,
                          borrow_in_training="borrow" in flags)
        student = new_student(teacher, int(tokenizer.pad_token_id), known, options)
        fit_student(student, tokens.ids, catalogue.item_ids, train, t_train, t_items,
                    teacher.cfg.temperature, task, options)
        student.eval()
        served = student.cfg
        for suffix, cfg in [("", served)] + [
                (f" n{k}:{w:g}", replace(served, cold_neighbours=k, cold_neighbour_weight=w))
                for k, w in mine.neighbours]:
            student.cfg = cfg
            s_items = student.item_vectors(tokens.ids, catalogue.item_ids)
            s_users = student.user_vectors(s_items, task.history)
            results[f"student {variant}{suffix}"] = figures(
                *vector_rankings(student, s_users, s_items, task, cold_rows), task, cold_rows)
            if cfg is not served:
                continue
            for rule, (held_task, held_cold) in rules.items():
                results[f"student {variant}{rule}"] = figures(*vector_rankings(
                    student, s_users, s_items, held_task, cold_rows, held_cold), task, cold_rows)
        student.cfg = served
    return results


def main(argv: list[str] | None = None) -> None:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--cold-items", type=int, default=1500)
    own.add_argument("--cold-seed", type=seeds, default=[0])
    own.add_argument("--cold-by", choices=["rare", "newest"], default="rare")
    own.add_argument("--students", default="0.1")
    own.add_argument("--student-epochs", type=float, default=DistillOptions.epochs)
    own.add_argument("--neighbours", type=neighbour_grid, default=[(0, 0.0)],
                     help="cold-neighbour settings K:W each student also ranks with (0:0)")
    own.add_argument("--release-slack", type=seeds, default=[],
                     help="also rank holding back items released more than S years after each "
                          "user's cut-off, for each S")
    own.add_argument("--save", help="write the pooled per-user figures to this JSON file")
    own.add_argument("--against", help="a --save file of another run: pair each model with its "
                                       "namesake there (this run minus that one)")
    own.add_argument("--also", help="a --save file of an earlier run of this teacher on other "
                                    "--cold-seed draws, pooled with this run's")
    mine, rest = own.parse_known_args(argv)
    args = parse_args(rest)
    if mine.cold_by == "newest" and len(mine.cold_seed) > 1:
        raise SystemExit("--cold-by newest draws no seed: give one --cold-seed")
    for variant in mine.students.split(","):
        unknown = set(variant.split("+")[1:]) - {"nocoldkl", "borrow"}
        if unknown:
            raise SystemExit(f"unknown student flags {sorted(unknown)} in {variant}")
    device = resolve_device(args.device)
    bf16 = use_bf16(args.precision, device)
    catalogue = load_catalogue(args.lake, args.ds)
    train, valid = read_examples(args.lake, args.ds, catalogue)
    results = pooled({seed: one_draw(args, mine, seed, catalogue, train, valid, device, bf16)
                      for seed in mine.cold_seed})
    if mine.also:
        with open(mine.also) as f:
            results = with_earlier_run(results, json.load(f))

    for name, got in results.items():
        print(f"{name}: " + ", ".join(
            f"{key} {np.mean(list(got[key].values())):.4f} ({len(got[key])} users)"
            for key in ("ndcg@10", "recall@20", "cold_only_recall@20")))
    base = results.get("student 0.1")
    for name, got in results.items():
        if base is None or got is base:
            continue
        for key in ("ndcg@10", "cold_only_recall@20"):
            d = metrics.paired_difference(got[key], base[key])
            print(f"{name} - student 0.1, {key}: {metrics.format_difference(d)}")
    if mine.save:
        with open(mine.save, "w") as f:
            json.dump(results, f)
    if mine.against:
        with open(mine.against) as f:
            other = load_figures(json.load(f))
        for name in sorted(results.keys() & other.keys()):
            for key in ("ndcg@10", "cold_only_recall@20"):
                d = metrics.paired_difference(results[name][key], other[name][key])
                print(f"{name} - {name} of {mine.against}, {key}: {metrics.format_difference(d)}")


def with_earlier_run(results: dict[str, dict[str, dict]], saved: dict
                     ) -> dict[str, dict[str, dict]]:
    """This run's per-user figures pooled with a --save file's, an earlier run of the same teacher
    on other draws (--also): each user's figure is the mean of the two runs' figures."""
    return pooled({0: results, 1: load_figures(saved)})


def load_figures(saved: dict) -> dict[str, dict[str, dict]]:
    """A --save file's figures with their user ids as numbers again (JSON keys are strings)."""
    return {name: {key: {int(user): v for user, v in per_user.items()}
                   for key, per_user in got.items()}
            for name, got in saved.items()}


if __name__ == "__main__":
    main()
