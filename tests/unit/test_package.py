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
