"""`recs package`: the project's code as one archive for `spark-submit --py-files`.

On a cluster, executors run the UDFs (`udfs`, which import `contract`) and the driver runs
`jobs` (and `models`); none of them has this checkout. The archive holds those packages (and `contract`, which
both sides import), sources
only, and Spark puts it on every Python path:

    spark-submit --master <cluster> --py-files dist/recs_jobs.zip <delta args> jobs/score.py ...

Third-party packages come from the cluster's Python environment, as they do for any PySpark
job. The driver runs every step, so it needs the whole of requirements.lock (torch and
transformers build the run's scoring state). Executors' Python workers need much less: the UDFs
score, rank and explain from float32 arrays with numpy (`udfs/scoring.py`), so they need only
EXECUTOR_PACKAGES beside PySpark itself, not torch (a test runs the udfs from this archive in a
Python where `import torch` fails).
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

PACKAGES = ("contract", "jobs", "models", "udfs")
PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = PROJECT / "dist" / "recs_jobs.zip"
# What executors' Python must have, beyond PySpark and this archive: pandas and pyarrow for
# PySpark's Arrow UDFs, numpy for the scoring math, safetensors for the broadcast state,
# threadpoolctl to hold numpy's BLAS to the task's CPUs.
EXECUTOR_PACKAGES = ("numpy", "pandas", "pyarrow", "safetensors", "threadpoolctl")


def build_archive(out: Path, root: Path = PROJECT) -> Path:
    """Write every .py file of PACKAGES under `root` into the zip `out`, sorted, and return it."""
    sources = sorted(path for package in PACKAGES for path in (root / package).rglob("*.py")
                     if "__pycache__" not in path.parts)
    missing = [p for p in PACKAGES if not (root / p / "__init__.py").is_file()]
    if missing:
        raise FileNotFoundError(f"{root} is not a recs checkout: no {missing} packages")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sources:
            # A fixed timestamp keeps the archive identical for identical sources.
            info = zipfile.ZipInfo(str(path.relative_to(root)), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recs package",
        description="Write the jobs, models and udfs packages into one zip for "
                    "`spark-submit --py-files`.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="Archive to write (default: %(default)s).")
    args = parser.parse_args(argv)
    out = build_archive(args.out)
    print(f"{out} ({out.stat().st_size:,} bytes); use: spark-submit --py-files {out} ...\n"
          f"executors' Python needs, beside pyspark: {', '.join(EXECUTOR_PACKAGES)} (no torch)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
