# Every target uses the project's own virtual environment, created on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Spark's Python workers must run the interpreter that has our packages.
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: venv demo test test-unit docs clean

venv: $(VENV)/.installed

# requirements.lock pins the whole tree that was measured to install and import together.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# Evaluation mode, so the demo ends with the metric table; every model trains with its defaults.
demo: venv
	$(VENV)/bin/recs run --holdout-fraction 0.2

# Three folders, each test marked by its folder (tests/conftest.py): tests/unit (no JVM, under a
# minute; first, on its own), tests/spark (one shared local SparkSession), tests/slow
# (spark-submit, Airflow). The Airflow tests set process-wide state (AIRFLOW_HOME is read once per
# process, and they export fast-JVM Spark settings for their spark-submits), so they run in a
# process of their own, apart from the suite's shared SparkSession.
AIRFLOW_TESTS := tests/slow/test_dags.py tests/slow/test_backfill.py
test: venv
	$(PY) -m pytest tests/unit
	$(PY) -m pytest tests --ignore=tests/unit $(addprefix --ignore=,$(AIRFLOW_TESTS))
	$(PY) -m pytest $(AIRFLOW_TESTS)

test-unit: venv
	$(PY) -m pytest tests/unit

docs: venv
	$(PY) -m contract.tables > docs/TABLES.md

clean:
	rm -rf lake spark-warehouse metastore_db derby.log

# `make airflow`: a local Airflow 3 (API server + UI, scheduler, DAG processor, triggerer) on this
# checkout; docs/AIRFLOW.md says how to trigger runs and backfills. Its SQLite DB, config and logs
# live in $(AIRFLOW_HOME); `source $(AIRFLOW_HOME)/env.sh` gives another shell the same settings.
AIRFLOW_HOME := $(abspath .airflow)
AIRFLOW_PORT ?= 8080
AIRFLOW_CONN_SPARK_DEFAULT ?= {"conn_type": "spark", "host": "local[*]"}

.PHONY: airflow
airflow: venv
	mkdir -p $(AIRFLOW_HOME)
	printf '%s\n' \
	  'export AIRFLOW_HOME=$(AIRFLOW_HOME)' \
	  'export AIRFLOW__CORE__DAGS_FOLDER=$(abspath dags)' \
	  'export AIRFLOW__CORE__LOAD_EXAMPLES=False' \
	  'export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$(AIRFLOW_PORT)' \
	  'export AIRFLOW__API__BASE_URL=http://localhost:$(AIRFLOW_PORT)' \
	  '# Each LocalExecutor slot is a process; the DAGs run one task at a time anyway.' \
	  'export AIRFLOW__CORE__PARALLELISM=4' \
	  '# Local sandbox, bound to 127.0.0.1: no login.' \
	  'export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True' \
	  '# spark-submit and recs must be on PATH for the tasks.' \
	  'export PATH=$(abspath $(VENV)/bin):$$PATH' \
	  > $(AIRFLOW_HOME)/env.sh
	printf "export AIRFLOW_CONN_SPARK_DEFAULT='%s'\n" '$(AIRFLOW_CONN_SPARK_DEFAULT)' \
	  >> $(AIRFLOW_HOME)/env.sh
	. $(AIRFLOW_HOME)/env.sh && exec airflow standalone
