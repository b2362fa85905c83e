"""Evaluate a teacher artifact with the offline protocol (../shared/EVALUATION.md).

    python -m models.evaluate_teacher --lake ./lake --ds 2024-01-31 [--model-dir DIR]

Ranks the whole raw.items catalogue for every user with test interactions, from their
features.user_history, never recommending their features.train_interactions items. Prints
NDCG@10, Recall@20, coverage@10 and cold-item Recall@20 and writes them, with the
popularity-bias figures (models/popularity_bias.py), to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from contract.args import add_lake_arg, run_date
from contract.delta_reader import read_partition
from contract.layout import latest_artifact
from contract.tables import FEATURES_TEST
from models import metrics, popularity_bias
from models.artifact import load_teacher
from models.data import RankingTask, evaluation_task, load_catalogue, tokenize, train_popularity
from models.runtime import HelpFormatter, resolve_device, use_bf16
from models.scoring import item_vectors, text_from_tokens, top_k, user_vectors
from models.teacher import Teacher


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m models.evaluate_teacher", description=__doc__,
        formatter_class=HelpFormatter)
    add_lake_arg(p)
    p.add_argument("--ds", required=True, type=run_date, help="run date YYYY-MM-DD of the partitions to read")
    p.add_argument("--model-dir", default=None,
                   help="teacher artifact directory (default: the newest <lake>/models/<ds>-*/teacher)")
    p.add_argument("--output", default=None,
                   help="metrics JSON to write (default: <model-dir>/evaluation-<ds>.json)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto = cuda when available, else cpu (all cores)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="fp32",
                   help="autocast dtype for encoding; fp32 by default so figures do not depend on hardware")
    return p.parse_args(argv)


def score_task(teacher: Teacher, task: RankingTask, vecs: torch.Tensor, lengths: np.ndarray,
               popularity: np.ndarray, bf16: bool) -> dict:
    """Protocol metrics and popularity-bias figures of the whole-catalogue ranking, and
    cold-only recall@20 (only the cold rows, those with no train interaction in `popularity`,
    ranked from text: their id embeddings are the zero row)."""
    cold_rows = np.flatnonzero(popularity == 0)
    users = user_vectors(teacher, vecs, task.history, lengths, bf16)
    full = top_k(teacher, users, vecs, task.exclude, 20)
    ranked = {int(u): r.tolist() for u, r in zip(task.user_ids, full)}
    cold = {}
    if len(cold_rows):
        nothing = [np.empty(0, dtype=np.int64)] * len(task.user_ids)
        top = top_k(teacher, users, vecs[torch.as_tensor(cold_rows, device=vecs.device)], nothing, 20)
        cold = {int(u): cold_rows[r].tolist() for u, r in zip(task.user_ids, top)}
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    return {**metrics.evaluate(ranked, relevant, len(lengths), cold_rows.tolist(), cold),
            **popularity_bias.bias_values(ranked, relevant, dict(enumerate(popularity.tolist())))}


def evaluate_artifact(model_dir: str | Path, lake: str, ds: str, device: torch.device,
                      bf16: bool = False) -> dict:
    teacher, tokenizer, _ = load_teacher(model_dir, device)
    catalogue = load_catalogue(lake, ds)
    tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
    test = read_partition(lake, FEATURES_TEST, ds, ["user_id", "item_id"])
    task = evaluation_task(lake, ds, catalogue, test)
    popularity = train_popularity(lake, ds, catalogue)
    vecs = item_vectors(teacher, text_from_tokens(teacher, tokens, device), catalogue.item_ids,
                        tokens.lengths, device, bf16)
    return {**score_task(teacher, task, vecs, tokens.lengths, popularity, bf16),
            "catalogue_items": len(catalogue.item_ids), "cold_items": int((popularity == 0).sum()),
            "model_dir": str(model_dir), "ds": ds}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    bf16 = use_bf16(args.precision, device)
    model_dir = Path(args.model_dir) if args.model_dir else latest_artifact(args.lake, args.ds, "teacher")
    result = evaluate_artifact(model_dir, args.lake, args.ds, device, bf16)
    output = Path(args.output) if args.output else model_dir / f"evaluation-{args.ds}.json"
    output.write_text(json.dumps(result, indent=2) + "\n")
    for key in ("ndcg@10", "recall@20", "coverage@10", "cold_recall@20"):
        print(f"{key:>15} {result[key]:.4f}")
    print(f"{result['evaluated_users']} users, {result['cold_test_interactions']} cold test "
          f"interactions; written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
