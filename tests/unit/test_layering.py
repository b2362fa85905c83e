"""The layers hold: `models/` never reaches Spark or the Spark jobs, `contract/` never reaches Spark.

Each package's modules, found with pkgutil (a new module is covered without editing this file),
are imported one after another in a fresh interpreter, which reports the first module after whose
import a forbidden package is in `sys.modules`, whether imported directly or through another
module. `python -X importtime -c "import <module>"` shows the chain that pulled it in.
"""

import json
import pkgutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

FORBIDDEN = {"models": ("pyspark", "jobs"), "contract": ("pyspark",)}

PROBE = """\
import importlib, json, sys
forbidden = sys.argv[1].split(",")
for name in sys.argv[2:]:
    importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    if leaked:
        print(json.dumps({"module": name, "leaked": leaked[:10]}))
        break
else:
    print(json.dumps(None))
"""


def modules(package: str) -> list[str]:
    """The package and every module and subpackage under its folder, imported by none of this."""
    found = [package]

    def walk(folder, prefix):
        for info in pkgutil.iter_modules([str(folder)]):
            found.append(prefix + info.name)
            if info.ispkg:
                walk(folder / info.name, f"{prefix}{info.name}.")

    walk(REPO / package, f"{package}.")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_every_module_is_found(package):
    on_disk = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
               for p in (REPO / package).rglob("*.py")}
    assert set(modules(package)) == on_disk


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_forbidden(package):
    forbidden = FORBIDDEN[package]
    done = subprocess.run([sys.executable, "-c", PROBE, ",".join(forbidden), *modules(package)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report is None, (f"importing {report['module']} loads {report['leaked']}: "
                            f"{package}/ must not import {' or '.join(forbidden)}")
