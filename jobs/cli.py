"""`recs`: one command for every step, and `recs run` for all of them in order.

Each Spark step is also a plain file for spark-submit (`spark-submit jobs/ingest.py ...`); the
model steps are JVM-free Python (`python -m models.train_teacher ...`). This module only
dispatches to the same `main(argv)` / `run(spark, args)` those expose.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import shlex
import sys

from jobs import build_training_set, evaluate, generate_candidates, ingest, publish, score
from jobs.args import add_common_args, setup_logging
from jobs.tables import ALL_TABLES

SPARK_STEPS = {
    "ingest": ingest,
    "build-training-set": build_training_set,
    "publish": publish,
    "generate-candidates": generate_candidates,
    "score": score,
    "evaluate": evaluate,
}
# torch and transformers load only when a model step runs.
MODEL_STEPS = {"train-teacher": "models.train_teacher", "distill": "models.distill"}
PIPELINE = ["ingest", "build-training-set", "train-teacher", "distill", "publish",
            "generate-candidates", "score", "evaluate"]
EXTRA_COMMANDS = {"sql": "jobs.sql", "backfill": "jobs.backfill", "check": "jobs.quality",
                  "package": "jobs.package"}


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recs run",
        description="Run every step in order for one run date (Spark steps share one session), "
                    "then list the tables written. Takes the flags of the Spark steps; model "
                    "steps take theirs through --teacher-args / --distill-args.")
    add_common_args(parser)
    for name in ("ingest", "build-training-set", "publish", "generate-candidates", "score",
                 "evaluate"):
        SPARK_STEPS[name].add_step_arguments(parser.add_argument_group(f"{name} step"))
    own = parser.add_argument_group("run")
    own.add_argument("--skip-training", action="store_true",
                     help="Do not train: score with --model-version or the current published "
                          "model (what the nightly DAG does).")
    own.add_argument("--teacher-args", default="",
                     help="Extra flags for train-teacher, quoted, e.g. \"--max-steps 200\".")
    own.add_argument("--distill-args", default="",
                     help="Extra flags for distill, quoted, e.g. \"--epochs 2\".")
    return parser


def run_all(argv: list[str]) -> dict:
    args = run_parser().parse_args(argv)
    setup_logging(args.log_level)
    from jobs.lake import read_partition
    from jobs.registry import models_root, resolve_model_version
    from jobs.spark import get_spark

    spark = get_spark("recs-run", args.master)
    common = ["--lake", args.lake, "--ds", args.ds]
    results = {name: SPARK_STEPS[name].run(spark, args) for name in ("ingest", "build-training-set")}
    if not args.skip_training:
        version = f"{args.ds}-{dt.datetime.now(dt.timezone.utc):%H%M%S}"
        importlib.import_module(MODEL_STEPS["train-teacher"]).main(
            [*common, "--version", version, *shlex.split(args.teacher_args)])
        importlib.import_module(MODEL_STEPS["distill"]).main(
            [*common, "--teacher-dir", str(models_root(args.lake) / version / "teacher"),
             *shlex.split(args.distill_args)])
        args.model_version = version
        results["publish"] = publish.run(spark, args)
    # Score with whatever is current now: a rejected model never reaches recs.top_k.
    args.model_version = resolve_model_version(spark, args.lake, None if not args.skip_training
                                               else args.model_version)
    for name in ("generate-candidates", "score"):
        results[name] = SPARK_STEPS[name].run(spark, args)
    if args.holdout_fraction is None:
        print("nightly mode (no --holdout-fraction): nothing held out, evaluation skipped")
    else:
        results["evaluate"] = evaluate.run(spark, args)

    print(f"\nTables for ds={args.ds} (lake {args.lake}):")
    for table in ALL_TABLES:
        try:
            rows = read_partition(spark, args.lake, table, args.ds).count()
        except FileNotFoundError:
            continue
        print(f"  {table.name:<30} {rows:>11,} rows  {table.path(args.lake)}")
    quarantine = results["ingest"]["quarantine"]
    print("  quarantine reasons: " + (", ".join(f"{k}={v}" for k, v in quarantine.items())
                                      or "none"))
    show_top_items(spark, args.lake, args.ds)
    return results


def show_top_items(spark, lake: str, ds: str, users: int = 3, items: int = 5) -> None:
    from pyspark.sql import functions as F

    from jobs.lake import read_partition
    from jobs.tables import RAW_ITEMS, RECS_TOP_K

    top = read_partition(spark, lake, RECS_TOP_K, ds)
    chosen = [r.user_id for r in top.select("user_id").distinct().orderBy("user_id").limit(users).collect()]
    titles = read_partition(spark, lake, RAW_ITEMS, ds).select("item_id", "title")
    rows = (top.where(F.col("user_id").isin(chosen) & (F.col("rank") <= items))
            .join(titles, "item_id").orderBy("user_id", "rank").collect())
    for user in chosen:
        print(f"\nuser {user}, top {items}:")
        for r in rows:
            if r.user_id == user:
                print(f"  {r['rank']:>2}. {r.title}  ({r.score:.2f})")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    usage = ("recs <step> [--lake L] [--ds YYYY-MM-DD] [...]\n\nsteps, in pipeline order:\n  "
             + "\n  ".join(PIPELINE) + "\n  run (all of them)\n\nother commands:\n  "
             + "\n  ".join(EXTRA_COMMANDS)
             + "\n\n`recs <step> --help` explains each step's flags.")
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: " + usage)
        return
    step, rest = argv[0], argv[1:]
    if step == "run":
        run_all(rest)
    elif step in SPARK_STEPS:
        SPARK_STEPS[step].main(rest)
    elif step in MODEL_STEPS or step in EXTRA_COMMANDS:
        module = MODEL_STEPS.get(step) or EXTRA_COMMANDS[step]
        result = importlib.import_module(module).main(rest)
        if isinstance(result, int) and result:
            raise SystemExit(result)
    else:
        print(f"recs: unknown step {step!r}\nusage: {usage}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
