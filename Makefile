# Two entry points for a newcomer: `make demo` and `make test`. Both set up what they need.
SHELL := /bin/bash
PY ?= python3
FLOOR_PY ?= $(shell bash .ci/find-python.sh 3.10)
VENV := .venv
FLOOR := .venv-floor
STAMP := $(VENV)/.installed
FLOOR_STAMP := $(FLOOR)/.installed
SYS_STAMP := .cache/.system-packages
NPM_STAMP := node_modules/.azurite-installed

.PHONY: setup demo demo-cluster test test-local test-floor test-cluster cluster-up cluster-down system-packages clean

$(SYS_STAMP):
	@bash .ci/system-packages.sh
	@mkdir -p .cache && touch $@

$(NPM_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[local,functions,ml,sql,deploy,secrets,access,telemetry,lakeview,test,lint]'
	@touch $@

$(FLOOR_STAMP): pyproject.toml constraints-floor.txt
	@test -n "$(FLOOR_PY)" || { echo "no Python 3.10 for the platform-floor run"; exit 1; }
	$(FLOOR_PY) -m venv $(FLOOR)
	$(FLOOR)/bin/pip install -q --upgrade pip
	$(FLOOR)/bin/pip install -q -c constraints-floor.txt -e '.[spark,test]' pyspark delta-spark
	@touch $@

setup: $(SYS_STAMP) $(NPM_STAMP) $(STAMP)

demo: setup
	$(VENV)/bin/headwater demo

# The same two batches, as events followed by pipeline runs submitted with spark-submit to a
# standalone cluster started (and stopped) for it; jobs run from the project's installed wheel.
demo-cluster: setup
	$(VENV)/bin/headwater demo --cluster --fresh --lake demo-cluster-lake

test: setup $(FLOOR_STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy ingestion transforms functions jobs
	$(VENV)/bin/python -m pytest
	$(FLOOR)/bin/python -m pytest -m floor -p no:cacheprovider

# A Spark standalone cluster on loopback: master + 2 workers (1 core, 1g each), each its own JVM,
# started with pyspark's spark-class; state and logs in .cache/cluster.
CLUSTER_DIR := .cache/cluster

cluster-up: setup
	$(VENV)/bin/python -m ingestion.testing.cluster up --dir $(CLUSTER_DIR)

cluster-down:
	$(VENV)/bin/python -m ingestion.testing.cluster down --dir $(CLUSTER_DIR)

# The spark-submit tests on a real standalone cluster (one cluster per test session).
test-cluster: setup
	$(VENV)/bin/python -m pytest tests/cluster tests/ingestion/test_submit.py

clean:
	rm -rf $(VENV) $(FLOOR) node_modules .cache demo-cluster-lake demo-cluster-lake-sources  # never ./lake: the project's own data
