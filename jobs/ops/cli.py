"""`recs`: one command for every step, and `recs run` for all of them in order.

Each Spark step is also a plain file for spark-submit (`spark-submit jobs/ingest.py ...`); the
model steps are JVM-free Python (`python -m models.train_teacher ...`). This module only
dispatches to the same `main(argv)` / `run(spark, args)` those expose, in the order of
`jobs.core.pipeline.PIPELINE`.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from contract.layout import artifact_dir, new_model_version
from contract.tables import ALL_TABLES
from jobs.core.pipeline import BY_NAME, PIPELINE, steps
from jobs.core.step import add_common_args, exit_on_error, setup_logging

EXTRA_COMMANDS = {"sql": "jobs.ops.sql", "backfill": "jobs.ops.backfill",
                  "check": "jobs.ops.quality", "package": "jobs.ops.package",
                  "maintain": "jobs.maintain"}


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recs run",
        description="Run every step in order for one run date (Spark steps share one session), "
                    "then list the tables written. Takes the flags of the Spark steps; model "
                    "steps take theirs through --teacher-args / --distill-args.")
    add_common_args(parser)
    for step in steps(engine="spark"):
        step.load().add_step_arguments(parser.add_argument_group(f"{step.name} step"))
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
    """Every step of PIPELINE in order in this process; Spark steps share one session."""
    args = run_parser().parse_args(argv)
    setup_logging(args.log_level)
    from jobs.build_training_set import require_lake_mode
    from jobs.core.delta import read_partition
    from jobs.core.registry import resolve_model_version
    from jobs.core.step import spark_session

    # Before ingest: a run refused by build-training-set should not spend an ingest first.
    require_lake_mode(args)
    spark = spark_session("recs-run", args.master)
    common = ["--lake", args.lake, "--ds", args.ds]
    version = new_model_version(args.ds)
    model_step_args = {
        "train-teacher": ["--version", version, *shlex.split(args.teacher_args)],
        "distill": ["--teacher-dir", str(artifact_dir(args.lake, version, "teacher")),
                    # Evaluation runs also train the student without the teacher: evaluate
                    # reports what distillation adds, with a paired interval, every time.
                    *(["--no-teacher-ablation"] if args.holdout_fraction is not None else []),
                    *shlex.split(args.distill_args)],
    }
    results = {}
    for step in PIPELINE:
        if step.schedule == "training" and args.skip_training:
            continue
        if step.evaluation_only and args.holdout_fraction is None:
            print(f"nightly mode (no --holdout-fraction): nothing held out, {step.name} skipped")
            continue
        if step.name == "publish":
            args.model_version = version
        if step.name == "generate-candidates":
            # Score with whatever is current now: a rejected model never reaches recs.top_k.
            args.model_version = resolve_model_version(
                spark, args.lake, args.model_version if args.skip_training else None)
        if step.engine == "torch":
            step.load().main([*common, *model_step_args[step.name]])
        else:
            results[step.name] = step.load().run(spark, args)

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

    from contract.tables import RAW_ITEMS, RECS_TOP_K
    from jobs.core.delta import read_partition

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
             + "\n  ".join(s.name for s in PIPELINE) + "\n  run (all of them)\n\nother commands:\n  "
             + "\n  ".join(EXTRA_COMMANDS)
             + "\n\n`recs <step> --help` explains each step's flags.")
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: " + usage)
        return
    name, rest = argv[0], argv[1:]
    if name == "run":
        with exit_on_error("recs run"):
            run_all(rest)
    elif name in BY_NAME or name in EXTRA_COMMANDS:
        module = BY_NAME[name].load() if name in BY_NAME else importlib.import_module(
            EXTRA_COMMANDS[name])
        with exit_on_error(f"recs {name}"):
            result = module.main(rest)
        if isinstance(result, int) and result:
            raise SystemExit(result)
    else:
        print(f"recs: unknown step {name!r}\nusage: {usage}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
