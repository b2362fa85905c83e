# Every target uses the project's own virtual environment, created on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Spark's Python workers must run the interpreter that has our packages.
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: venv demo test docs clean

venv: $(VENV)/.installed

# requirements.lock pins the whole tree that was measured to install and import together.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# Evaluation mode, so the demo ends with the metric table; two teacher epochs keep it to minutes.
demo: venv
	$(VENV)/bin/recs run --holdout-fraction 0.2 --teacher-args "--epochs 2"

test: venv
	$(PY) -m pytest

docs: venv
	$(PY) -m jobs.tables > docs/TABLES.md

clean:
	rm -rf lake spark-warehouse metastore_db derby.log
