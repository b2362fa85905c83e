"""A lake holds one mode's output: nightly (what serving readers read) or evaluation.

An evaluation run (`--holdout-fraction F`) builds features, a model and recommendations from
histories with each user's latest interactions held out. Over a lake that serves, it would
replace that ds's recs.scores / recs.top_k with recommendations from truncated histories and
could publish a model trained on them; nightly output in an evaluation lake would likewise mix
serving runs into what evaluations compare. So build-training-set, where a run's mode is chosen,
refuses the other mode's lake unless told otherwise (`--allow-mixed-modes`).

The lake says which it is, without a marker of its own: features.test_interactions has rows for
a ds exactly when that ds was built in evaluation mode, so recs.top_k and recs.model_registry
partitions of other dates are nightly output. JVM-free: only Delta logs are read.
"""

from __future__ import annotations

from contract import delta_reader
from contract.tables import FEATURES_TEST, RECS_MODEL_REGISTRY, RECS_TOP_K, Table


class LakeModeError(RuntimeError):
    """The run's mode is not the lake's."""


def run_dates(lake: str, table: Table) -> set[str]:
    """The `ds` partitions holding rows of `table`, from its Delta log; none when it is absent."""
    found = delta_reader.delta_table(lake, table, missing_ok=True)
    return set() if found is None else {p["ds"] for p in found.partitions()}


def output_dates(lake: str) -> tuple[list[str], list[str]]:
    """(dates with evaluation output, dates with nightly output) in the lake, each sorted."""
    evaluation = run_dates(lake, FEATURES_TEST)
    served = run_dates(lake, RECS_TOP_K) | run_dates(lake, RECS_MODEL_REGISTRY)
    return sorted(evaluation), sorted(served - evaluation)


def _dates(dates: list[str]) -> str:
    return dates[0] if len(dates) == 1 else f"{dates[0]} .. {dates[-1]} ({len(dates)} dates)"


def require_mode(lake: str, evaluation: bool) -> None:
    """Raise LakeModeError when the lake holds output of the other mode."""
    evaluation_dates, nightly_dates = output_dates(lake)
    if evaluation and nightly_dates:
        raise LakeModeError(
            f"{lake} serves nightly output ({RECS_TOP_K.name} or {RECS_MODEL_REGISTRY.name} for "
            f"ds {_dates(nightly_dates)}): an evaluation run (--holdout-fraction) would replace "
            "it with recommendations and models from truncated histories. Evaluate in a lake of "
            "its own (--lake), or pass --allow-mixed-modes")
    if not evaluation and evaluation_dates:
        raise LakeModeError(
            f"{lake} is an evaluation lake ({FEATURES_TEST.name} holds held-out interactions "
            f"for ds {_dates(evaluation_dates)}): a nightly run would mix serving output into "
            "it. Serve from a lake of its own (--lake), pass --holdout-fraction, or "
            "--allow-mixed-modes")
