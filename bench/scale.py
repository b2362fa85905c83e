"""Nightly candidates + scoring at growing synthetic scales: wall time and peak memory.

    python bench/scale.py --lake /tmp/scale --student-dir L/models/V/student \\
        [--pairs 1000000,10000000,100000000] [--items 10000] [--no-explain] [--top-k-only]
        [--write-limit]

For each size, users = pairs / items on a synthetic catalogue of `--items` items (ingested and
turned into features untimed), then `generate-candidates` and `score` run as spark-submit jobs
(`local[*]`, `--driver-memory`, default 4g), exactly as the nightly DAG runs them. While each job runs, the
process tree is sampled every 0.2 s: peak resident memory of the JVM (driver and executors: one
JVM in local mode), of the Python driver, and of the largest Python worker. The student is a real
distilled one (its towers give the synthetic items vectors from their text), so the cost per pair
is the production cost. With `--write-limit`, each size then runs bench/write_limit.py (also
spark-submitted): the raw Delta write of the same rows with score = rand() and `score.run` again,
turn about in one session, and `recs score`'s rate as a share of the raw write's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from contract.layout import artifact_dir
from jobs import build_training_set, generate_candidates, ingest, score
from jobs.core.spark import delta_submit_args, get_spark

MIB = 1024 * 1024


def role(process: psutil.Process) -> str | None:
    try:
        cmd = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if "java" in process.name() or "/java" in cmd:
        return "jvm"
    if "pyspark.daemon" in cmd or "pyspark.worker" in cmd or "pyspark/worker" in cmd:
        return "python worker"
    if "python" in process.name() or "python" in cmd.split(" ")[0]:
        return "python driver"
    return None


def run_sampled(command: list[str], env: dict, log: Path) -> tuple[float, dict[str, int]]:
    """Run `command`; (seconds, peak RSS by role). A worker's peak is the largest single one."""
    peaks: dict[str, int] = {}
    with log.open("w") as out:
        started = time.perf_counter()
        job = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        parent = psutil.Process(job.pid)

        def sample() -> None:
            while job.poll() is None:
                try:
                    tree = [parent, *parent.children(recursive=True)]
                except psutil.NoSuchProcess:
                    break
                for process in tree:
                    name = role(process)
                    try:
                        rss = process.memory_info().rss
                    except psutil.NoSuchProcess:
                        continue
                    if name:
                        peaks[name] = max(peaks.get(name, 0), rss)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = job.wait()
        seconds = time.perf_counter() - started
        sampler.join()
    if returncode != 0:
        raise SystemExit(f"{command[-8:]} failed ({returncode}); see {log}")
    return seconds, peaks


def prepare(lake: str, ds: str, users: int, items: int, student_dir: Path, version: str) -> None:
    spark = get_spark("bench-scale-setup", ui=False)
    ingest.run(spark, ingest.build_parser().parse_args(
        ["--lake", lake, "--ds", ds, "--synthetic-users", str(users),
         "--synthetic-items", str(items), "--synthetic-interactions", "20"]))
    build_training_set.run(spark, build_training_set.build_parser().parse_args(
        ["--lake", lake, "--ds", ds, "--negatives", "1"]))
    target = artifact_dir(lake, version, "student")
    if not target.exists():
        shutil.copytree(student_dir, target)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lake", required=True)
    p.add_argument("--student-dir", type=Path, required=True)
    p.add_argument("--pairs", default="1000000,10000000,100000000")
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--master", default="local[*]")
    p.add_argument("--driver-memory", default="4g",
                   help="JVM heap in local mode; the JVM peak follows it, not the pairs")
    p.add_argument("--no-explain", action="store_true",
                   help="score without recs.top_k.because, to measure what explaining costs")
    p.add_argument("--top-k-only", action="store_true",
                   help="score with --top-k-only: recs.top_k alone, no recs.scores rows (the "
                        "flag for catalogues too large to write every pair)")
    p.add_argument("--write-limit", action="store_true",
                   help="per size, also measure score against the raw write of its rows "
                        "(bench/write_limit.py)")
    args = p.parse_args()

    sizes = [int(float(s)) for s in args.pairs.split(",")]
    python = sys.executable
    env = {**os.environ, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python}
    spark_submit = str(Path(python).parent / "spark-submit")
    logs = Path(args.lake) / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, pairs in enumerate(sizes):
        ds = f"2026-01-{n + 1:02d}"
        users = max(1, pairs // args.items)
        prepare(args.lake, ds, users, args.items, args.student_dir, "scale")
        score_flags = ["--model-version", "scale", *(["--no-explain"] if args.no_explain else []),
                       *(["--top-k-only"] if args.top_k_only else [])]
        for step, module, flags in (("generate-candidates", generate_candidates,
                                     ["--max-pairs", str(10 * pairs)]),
                                    ("score", score, score_flags)):
            command = [spark_submit, "--master", args.master, "--driver-memory", args.driver_memory,
                       *delta_submit_args(python), "--conf", "spark.ui.enabled=false",
                       module.__file__, "--lake", args.lake, "--ds", ds, *flags]
            seconds, peaks = run_sampled(command, env, logs / f"{ds}-{step}.log")
            rows.append((users * args.items, step, seconds, peaks))
            print(f"{users:,} users x {args.items:,} items, {step}: {seconds:.1f} s, "
                  + ", ".join(f"{k} {v / MIB:,.0f} MiB" for k, v in sorted(peaks.items())),
                  flush=True)
        if args.write_limit:
            log = logs / f"{ds}-write-limit.log"
            run_sampled([spark_submit, "--master", args.master, "--driver-memory",
                         args.driver_memory, *delta_submit_args(python), "--conf",
                         "spark.ui.enabled=false", str(Path(__file__).with_name("write_limit.py")),
                         "--lake", args.lake, "--ds", ds, "--model-version", "scale",
                         *(["--no-explain"] if args.no_explain else [])], env, log)
            print("".join(line for line in log.read_text().splitlines(keepends=True)
                          if line.startswith("|") or " pairs (ds " in line), flush=True)

    print("\n| users x items | step | seconds | pairs/s | JVM peak MiB | Python driver peak MiB "
          "| Python worker peak MiB |\n|---|---|---|---|---|---|---|")
    for pairs, step, seconds, peaks in rows:
        print(f"| {pairs:,} | {step} | {seconds:.1f} | {pairs / seconds:,.0f} | "
              f"{peaks.get('jvm', 0) / MIB:,.0f} | {peaks.get('python driver', 0) / MIB:,.0f} | "
              f"{peaks.get('python worker', 0) / MIB:,.0f} |")


if __name__ == "__main__":
    main()
