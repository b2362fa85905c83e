"""The pipeline's steps, declared once, in order.

`recs` (its usage and `recs run`), `recs backfill`, both Airflow DAGs and the step tables of
README.md and docs/ARCHITECTURE.md derive from `PIPELINE`; a test keeps the docs in step.
Plain Python: the DAG files import it when they are parsed, so nothing heavy loads here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Step:
    name: str  # the `recs <name>` command
    module: str  # the module whose `main(argv)` runs the step
    engine: str  # "spark": a file spark-submit runs (jobs/<step>.py); "torch": JVM-free Python
    schedule: str  # "nightly": once per run date; "training": once per model version
    evaluation_only: bool = False  # only in evaluation mode (a held-out split to measure on)

    @property
    def task_id(self) -> str:
        """Airflow task id, and the file name of a Spark step (`jobs/<task_id>.py`)."""
        return self.name.replace("-", "_")

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


PIPELINE: tuple[Step, ...] = (
    Step("ingest", "jobs.ingest", "spark", "nightly"),
    Step("build-training-set", "jobs.build_training_set", "spark", "nightly"),
    Step("train-teacher", "models.train_teacher", "torch", "training"),
    Step("distill", "models.distill", "torch", "training"),
    Step("publish", "jobs.publish", "spark", "training"),
    Step("generate-candidates", "jobs.generate_candidates", "spark", "nightly"),
    Step("score", "jobs.score", "spark", "nightly"),
    Step("evaluate", "jobs.evaluate", "spark", "nightly", evaluation_only=True),
)

BY_NAME = {s.name: s for s in PIPELINE}


def steps(engine: str | None = None, schedule: str | None = None) -> list[Step]:
    """The steps with that engine and schedule (either may be None: any), in pipeline order."""
    return [s for s in PIPELINE if engine in (None, s.engine) and schedule in (None, s.schedule)]


def step_names(engine: str | None = None, schedule: str | None = None) -> list[str]:
    return [s.name for s in steps(engine, schedule)]
