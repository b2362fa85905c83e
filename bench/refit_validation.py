"""Does refitting on the validation rows help? Checked inside the training data, test never read.

    python bench/refit_validation.py --lake L --ds D [train_teacher flags]

Needs a lake built with `recs build-training-set --valid-fraction 0.2`. Each user's validation
rows are cut in two by time: the earlier half plays the validation split, the later half the
test. Then, as `train_teacher --refit` does:

- the validation run: trained on the train rows, early-stopping on the earlier half;
- the refit: trained afresh on the train rows and the earlier half, for the validation run's
  length (its best step).

Both rank the later half from each user's history before it (the whole catalogue minus every
item of their train and earlier-half rows) and the script prints NDCG@10 and Recall@20 of each,
with the paired bootstrap interval of the difference. JVM-free.
"""

from __future__ import annotations

import sys

import numpy as np

from models import metrics
from models.data import concat_groups, load_catalogue, read_examples, tokenize, validation_task
from models.runtime import resolve_device, use_bf16
from models.scoring import item_vectors, rankings
from models.train_teacher import parse_args, train_on
from models.training import ItemText, refit_epochs


def later_half(groups) -> np.ndarray:
    """Mask of each user's later half of `groups` by time (the earlier half keeps the odd one)."""
    order = np.lexsort((np.arange(len(groups)), groups.target_ts, groups.user_ids))
    users = groups.user_ids[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    sizes = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, sizes)
    mask = np.zeros(len(groups), dtype=bool)
    mask[order] = rank >= np.repeat((sizes + 1) // 2, sizes)
    return mask


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    bf16 = use_bf16(args.precision, device)
    catalogue = load_catalogue(args.lake, args.ds)
    train, valid = read_examples(args.lake, args.ds, catalogue)
    later = later_half(valid)
    early, late = valid.take(np.flatnonzero(~later)), valid.take(np.flatnonzero(later))
    seen = concat_groups(train, early)
    early_task, late_task = validation_task(train, early), validation_task(seen, late)
    print(f"{len(train)} train, {len(early)} earlier-half and {len(late)} later-half rows; "
          f"{len(late_task.user_ids)} users ranked", file=sys.stderr)

    figures = {}
    teacher, tokenizer, result, _ = train_on(args, catalogue, train, early_task, device, bf16)
    tokens = tokenize(tokenizer, catalogue.texts, args.max_item_tokens)

    relevant = {int(u): r.tolist() for u, r in zip(late_task.user_ids, late_task.relevant)}

    def score(model) -> dict[str, dict]:
        text = ItemText(model, tokens, catalogue.item_ids, device, bf16)
        vecs = item_vectors(model, text, catalogue.item_ids, tokens.lengths, device, bf16)
        ranked = rankings(model, late_task, vecs, tokens.lengths, bf16, k=20)
        return metrics.per_user_values(ranked, relevant)

    figures["validation run"] = score(teacher)
    epochs = refit_epochs(result, len(train), args.batch_groups)
    refit, *_ = train_on(args, catalogue, seen, None, device, bf16, epochs=epochs)
    figures[f"refit ({epochs:.2f} epochs)"] = score(refit)
    for name, got in figures.items():
        print(name + ": " + ", ".join(f"{key} {np.mean(list(got[key].values())):.4f}"
                                      for key in ("ndcg@10", "recall@20")))
    before, after = figures.values()
    for key in ("ndcg@10", "recall@20"):
        d = metrics.paired_difference(after[key], before[key])
        print(f"refit - validation run, {key}: {metrics.format_difference(d)}")


if __name__ == "__main__":
    main()
