"""Does EASE, or a second teacher, know something the teacher does not? Blends on the validation split.

    python bench/teacher_ease_blend.py --lake L --ds D --teacher-dir DIR [--teacher-dir DIR2 ...]
        [--lambdas 250,500] [--weights 0.25,0.5,1,2,4]

Ranks the validation task (models.data.validation_task: each user's earliest validation history,
the whole catalogue minus their train items) with each teacher's logits; with several teachers
(e.g. the same settings, other seeds) also with the mean of their log-softmax, an ensemble; with
EASE (fitted on the train interactions minus the validation targets, baselines.validation_ease);
and with teacher + w x EASE (the ensemble's scores where there are several teachers), EASE's
scores first scaled per user to the spread of the teacher's. Prints NDCG@10 and Recall@20 of
each, and each further teacher's paired difference from the first (95% bootstrap over users).
Point it at the teachers' `teacher-validation/` directories where they were refitted: the
refitted ones learned the validation rows. The test split is never read. JVM-free.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from contract.args import add_lake_arg, run_date
from models import metrics
from models.artifact import load_teacher
from models.baselines import top_rows, validation_ease
from models.data import (
    load_catalogue,
    read_examples,
    tokenize,
    train_interactions,
    validation_task,
)
from models.scoring import item_vectors, text_from_tokens, user_vectors


def floats(value: str) -> list[float]:
    return [float(v) for v in value.split(",")]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_lake_arg(p)
    p.add_argument("--ds", required=True, type=run_date)
    p.add_argument("--teacher-dir", required=True, action="append",
                   help="a teacher artifact; repeat it to rank with their mean too")
    p.add_argument("--lambdas", type=floats, default=[250.0, 500.0])
    p.add_argument("--weights", type=floats, default=[0.25, 0.5, 1.0, 2.0, 4.0])
    args = p.parse_args(argv)

    cpu = torch.device("cpu")
    catalogue = load_catalogue(args.lake, args.ds)
    train, valid = read_examples(args.lake, args.ds, catalogue)
    task = validation_task(train, valid)
    n_items = len(catalogue.item_ids)
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}

    def report(name: str, scores: np.ndarray) -> dict[str, dict]:
        top = top_rows(scores, task.exclude, 20)
        ranked = {int(u): r.tolist() for u, r in zip(task.user_ids, top)}
        got = metrics.evaluate(ranked, relevant, n_items)
        print(f"{name:<28} NDCG@10 {got['ndcg@10']:.4f}  Recall@20 {got['recall@20']:.4f}",
              flush=True)
        return metrics.per_user_values(ranked, relevant)

    def teacher_logits(model_dir: str) -> np.ndarray:
        teacher, tokenizer, _ = load_teacher(model_dir, cpu)
        tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
        vecs = item_vectors(teacher, text_from_tokens(teacher, tokens, cpu), catalogue.item_ids,
                            tokens.lengths, cpu, False)
        users = user_vectors(teacher, vecs, task.history, tokens.lengths, False)
        # Log-probabilities: their mean ranks as the product of the teachers' distributions
        # (for one teacher, the same ranking as its logits).
        return torch.log_softmax(teacher.score(users, vecs).double(), -1).numpy()

    each = [teacher_logits(d) for d in args.teacher_dir]
    per_user = [report(f"teacher {d}", scores) for d, scores in zip(args.teacher_dir, each)]
    for model_dir, values in zip(args.teacher_dir[1:], per_user[1:]):
        # Teachers trained with other settings on the same lake: which one ranks better, paired
        # over the same validation users.
        for metric in ("ndcg@10", "recall@20"):
            diff = metrics.paired_difference(values[metric], per_user[0][metric])
            print(f"  {model_dir} - first teacher, {metric}: {metrics.format_difference(diff)}")
    logits = np.mean(each, axis=0)
    if len(each) > 1:
        report(f"mean of the {len(each)} teachers", logits)

    ease = validation_ease(*train_interactions(args.lake, args.ds, catalogue), n_items, valid)
    found = np.searchsorted(ease.users, task.user_ids).clip(max=len(ease.users) - 1)
    unranked = np.full(n_items, -np.inf)
    unranked[ease.items] = 0.0  # EASE ranks only items with a train interaction
    for lam in args.lambdas:
        ease_scores = np.zeros((len(task.user_ids), n_items))
        ease_scores[:, ease.items] = ease.scores(ease.x[found], lam)
        report(f"EASE lambda {lam:g}", ease_scores + unranked)
        scale = logits.std(1, keepdims=True) / (ease_scores[:, ease.items].std(1, keepdims=True)
                                                + 1e-9)
        for w in args.weights:
            report(f"teacher + {w:g} x EASE {lam:g}", logits + w * scale * ease_scores)


if __name__ == "__main__":
    main()
