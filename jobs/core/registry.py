"""Which model serves: artifacts under <lake>/models/<version>/, decisions in recs.model_registry."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from contract.layout import artifact_dir
from contract.tables import RECS_MODEL_REGISTRY
from jobs.core.delta import read_table, write_partition


def student_dir(lake: str, version: str) -> Path:
    """The student artifact of `version`, which must exist."""
    path = artifact_dir(lake, version, "student")
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no student artifact for model version {version} at {path}: "
                                "run `recs distill` first")
    return path


def valid_ndcg(lake: str, version: str) -> float:
    metrics = json.loads((student_dir(lake, version) / "metrics.json").read_text())
    value = metrics.get("best_valid_ndcg@10")
    if value is None:
        raise ValueError(f"student {version} has no validation NDCG@10 in its metrics.json")
    return float(value)


def current_model(spark: SparkSession, lake: str, excluding: str | None = None):
    """The latest published row (model_version, valid_ndcg), or None before any publish."""
    table = read_table(spark, lake, RECS_MODEL_REGISTRY, missing_ok=True)
    if table is None:
        return None
    published = table.where(F.col("decision") == "published")
    if excluding:
        published = published.where(F.col("model_version") != excluding)
    return published.orderBy(F.desc("ds"), F.desc("decided_at")).select(
        "model_version", "valid_ndcg").first()


def resolve_model_version(spark: SparkSession, lake: str, requested: str | None) -> str:
    if requested:
        student_dir(lake, requested)
        return requested
    current = current_model(spark, lake)
    if current is None:
        raise FileNotFoundError(f"no published model in {RECS_MODEL_REGISTRY.path(lake)}: run "
                                "`recs distill` and `recs publish`, or pass --model-version")
    return current["model_version"]


def decide(candidate_ndcg: float, current_ndcg: float | None, tolerance: float) -> tuple[str, str]:
    """Publish unless the candidate is worse than the current model by more than `tolerance`."""
    if current_ndcg is None:
        return "published", "no current model"
    floor = current_ndcg - tolerance
    if candidate_ndcg >= floor:
        return "published", (f"valid NDCG@10 {candidate_ndcg:.4f} >= current {current_ndcg:.4f} "
                             f"- tolerance {tolerance}")
    return "rejected", (f"valid NDCG@10 {candidate_ndcg:.4f} < current {current_ndcg:.4f} "
                        f"- tolerance {tolerance}; the current model keeps serving")


def publish(spark: SparkSession, lake: str, ds: str, version: str, tolerance: float) -> dict:
    candidate = valid_ndcg(lake, version)
    current = current_model(spark, lake, excluding=version)
    decision, reason = decide(candidate, current["valid_ndcg"] if current else None, tolerance)
    row = {"model_version": version, "student_dir": str(student_dir(lake, version)),
           "valid_ndcg": candidate,
           "previous_version": current["model_version"] if current else None,
           "previous_valid_ndcg": current["valid_ndcg"] if current else None,
           "decision": decision, "reason": reason,
           "decided_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)}
    frame = spark.createDataFrame([row], schema=", ".join(
        f"{c.name} {'bigint' if c.type == 'long' else c.type}"
        for c in RECS_MODEL_REGISTRY.columns if c.name != "ds"))
    write_partition(frame, lake, RECS_MODEL_REGISTRY, ds)
    return row
