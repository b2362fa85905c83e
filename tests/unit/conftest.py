"""tests/unit starts no JVM, so the folder runs alone in well under a minute.

Importing pyspark is allowed (the Spark steps' argument parsers live beside their jobs); starting
its JVM is not: the `spark` fixture fails here, and a test that starts a JVM any other way fails
in teardown. Such a test belongs in tests/spark.
"""

import sys

import pytest


def jvm_gateway():
    """Py4J gateway of a JVM this process started (None until a SparkContext is created)."""
    pyspark = sys.modules.get("pyspark")
    return None if pyspark is None else pyspark.SparkContext._gateway


@pytest.fixture(scope="session")
def spark():
    pytest.fail("tests/unit starts no JVM: a test that needs the `spark` fixture belongs in "
                "tests/spark", pytrace=False)


@pytest.fixture(autouse=True)
def no_jvm_started():
    before = jvm_gateway()
    yield
    if before is None and jvm_gateway() is not None:
        pytest.fail("this test started a JVM: it belongs in tests/spark", pytrace=False)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from torch threads, and threads stall when Spark tests share the
    CPU; a module that never imports torch pays nothing."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
