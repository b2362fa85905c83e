"""Where everything lives under a lake root, and how a model version is named: one place.

    <lake>/<database>/<table>/          Delta tables (contract/tables.py)
    <lake>/models/<version>/teacher/    teacher artifact (models/artifact.py writes and reads it)
    <lake>/models/<version>/student/    student artifact, distilled from the teacher beside it
    <lake>/models/<version>/teacher-validation/   with --refit: the teacher before its refit
    <lake>/reports/<ds>/                evaluation report and chart
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

LAKE_DEFAULT = "./lake"
# student-no-teacher: the distillation ablation (the student trained without the teacher), written
# in evaluation runs so that every evaluation shows what the teacher adds.
# teacher-validation: with `train-teacher --refit`, the teacher trained on the train rows alone,
# whose soft targets the students' validation runs read (the served teacher learned the validation
# rows too).
VALIDATION_TEACHER = "teacher-validation"
ROLES = ("teacher", "student", "student-no-teacher", VALIDATION_TEACHER)
# A model version is "<ds>-<HHMMSS>" (UTC): sortable within a day, readable in paths and SQL.
# The training DAG renders the same format from its logical date (VERSION_TIME_FORMAT).
VERSION_TIME_FORMAT = "%H%M%S"


def default_lake() -> str:
    """`--lake` default of every command: $RECS_LAKE, else ./lake."""
    return os.environ.get("RECS_LAKE", LAKE_DEFAULT)


def lake_root(lake: str | os.PathLike) -> Path:
    return Path(os.path.abspath(lake))


def models_root(lake: str | os.PathLike) -> Path:
    return lake_root(lake) / "models"


def artifact_dir(lake: str | os.PathLike, version: str, role: str) -> Path:
    """<lake>/models/<version>/<role>: the one way any code finds a model artifact."""
    if role not in ROLES:
        raise ValueError(f"artifact role must be one of {ROLES}, got {role!r}")
    if not version or "/" in version or version.startswith("."):
        raise ValueError(f"invalid model version {version!r}")
    return models_root(lake) / version / role


def new_model_version(ds: str, at: dt.datetime | None = None) -> str:
    at = at or dt.datetime.now(dt.timezone.utc)
    return f"{ds}-{at:{VERSION_TIME_FORMAT}}"


def latest_artifact(lake: str | os.PathLike, ds: str, role: str) -> Path:
    """The newest <lake>/models/<ds>-*/<role> (by modification time)."""
    found = sorted(models_root(lake).glob(f"{ds}-*/{role}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no {role} artifact for ds={ds} under {models_root(lake)}")
    return found[-1]


def report_dir(lake: str | os.PathLike, ds: str) -> Path:
    return lake_root(lake) / "reports" / ds
