"""`recs package`: the --py-files archive a cluster gets (tests/slow/test_cluster.py runs the
scoring job from it on a local cluster)."""

from jobs.ops import package


def test_the_archive_holds_the_three_packages_and_nothing_else(tmp_path):
    import zipfile

    names = zipfile.ZipFile(package.build_archive(tmp_path / "a.zip")).namelist()
    assert {"jobs/score.py", "udfs/scoring.py", "models/student.py", "udfs/__init__.py"} <= set(names)
    assert {n.split("/")[0] for n in names} == {"contract", "jobs", "models", "udfs"}
    assert all(n.endswith(".py") for n in names)
    again = package.build_archive(tmp_path / "b.zip")
    assert again.read_bytes() == (tmp_path / "a.zip").read_bytes()


# An executor's Python worker: EXECUTOR_PACKAGES, this project only from the archive (-S: the
# checkout's editable install is invisible), and no torch: `import torch` fails.
EXECUTOR = """\
import importlib, json, sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "torch":
            raise ModuleNotFoundError("No module named 'torch' (this executor has none)")
        return None

sys.meta_path.insert(0, NoTorch())
archive, site_packages, payload, packages, *modules = sys.argv[1:]
sys.path[:0] = [archive, site_packages]
for package in packages.split(","):
    importlib.import_module(package)
before = {m.partition(".")[0] for m in sys.modules}
for module in modules:
    importlib.import_module(module)
brought = sorted({m.partition(".")[0] for m in sys.modules} - before
                 - set(sys.stdlib_module_names) - {"contract", "models", "udfs"})

import numpy as np
import pyarrow as pa
from udfs.scoring import ScoringState, set_blas_threads

set_blas_threads()  # in a task: PySpark (TaskContext) and threadpoolctl
state = ScoringState.from_payload(open(payload, "rb").read())
users, items = np.array([10, 10, 20]), np.array([103, 100, 102])
seen = pa.array([[100, 101], None], pa.list_(pa.int64()))
unseen = pa.Table.from_batches(list(state.unseen_scores(np.array([10, 20]), seen)))
best = pa.Table.from_batches(list(state.best_unseen(np.array([10, 20]), seen, 2)))
print(json.dumps({
    "scores": state.score_pairs(users, items).tolist(),
    "because": state.explain_pairs(users, items).to_pylist(),
    "unseen": unseen.to_pylist(), "best": best.to_pylist(),
    "brought": brought,
    "from_archive": all(sys.modules[m].__file__.startswith(archive)
                        for m in sys.modules if m.partition(".")[0] in ("contract", "udfs"))}))
"""


def test_executors_score_rank_and_explain_without_torch(tmp_path):
    import json
    import subprocess
    import sys
    import sysconfig
    import zipfile

    import numpy as np
    import torch

    from jobs.score import build_state
    from models.student import Student, StudentConfig

    torch.manual_seed(0)
    student = Student(StudentConfig(vocab_size=5, pad_token_id=0, num_known_items=1, dim=4,
                                    max_history=3)).eval()
    with torch.no_grad():
        student.users.recency.normal_()
        student.users.out.weight.normal_()
    item_ids = np.arange(100, 104)
    state = build_state(student, item_ids, torch.nn.functional.normalize(torch.randn(4, 4)),
                        np.array([20, 10]), np.array([[2, 3, -1], [0, 1, 1]]))
    (tmp_path / "state").write_bytes(state.to_payload())
    archive = package.build_archive(tmp_path / "recs_jobs.zip")
    udfs = [n.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
            for n in zipfile.ZipFile(archive).namelist() if n.startswith("udfs/")]
    done = subprocess.run(
        [sys.executable, "-S", "-c", EXECUTOR, str(archive), sysconfig.get_paths()["purelib"],
         str(tmp_path / "state"), ",".join(package.EXECUTOR_PACKAGES), *udfs],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    worker = json.loads(done.stdout)
    # Every udfs module imports, bringing nothing EXECUTOR_PACKAGES did not already load; the
    # project's code came from the archive.
    assert worker["brought"] == [] and worker["from_archive"]
    # And the worker computes what the driver does.
    users, items = np.array([10, 10, 20]), np.array([103, 100, 102])
    np.testing.assert_array_equal(worker["scores"], state.score_pairs(users, items))
    assert worker["because"] == state.explain_pairs(users, items).to_pylist()
    # User 10 saw 100 and 101: their pairs are 102 and 103; user 20 has all four.
    assert [(r["user_id"], r["item_id"]) for r in worker["unseen"]] == [
        (10, 102), (10, 103), (20, 100), (20, 101), (20, 102), (20, 103)]
    np.testing.assert_allclose([r["score"] for r in worker["unseen"]], state.score_pairs(
        np.array([10, 10, 20, 20, 20, 20]), np.array([102, 103, 100, 101, 102, 103])), rtol=1e-6)
    # Each user's 2 best of those, ranked by score.
    for user in (10, 20):
        pairs = sorted((r for r in worker["unseen"] if r["user_id"] == user),
                       key=lambda r: -r["score"])[:2]
        assert [(r["rank"], r["item_id"]) for r in worker["best"] if r["user_id"] == user] == [
            (1, pairs[0]["item_id"]), (2, pairs[1]["item_id"])]
