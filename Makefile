# The two commands of the README (`make demo`, `make test`) create .venv when needed, install the
# project with the pinned versions of constraints.txt, and check Python 3.11+ and Java 17+ first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYTHONHASHSEED ?= 0

.PHONY: demo test test-e2e test-spark41 lint format bench bench-reference airflow airflow-stop install prereqs clean

# checkov (the infra tests run it on the synthesized templates) pins libraries the project's own environment
# pins newer, so it gets a virtualenv of its own; where it cannot be installed its test is skipped and says so.
CHECKOV_VENV  := build/venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV       ?= checkov==3.3.30

$(CHECKOV_STAMP):
	@($(PYTHON) -m venv $(CHECKOV_VENV) && $(CHECKOV_VENV)/bin/python -m pip install --quiet "$(CHECKOV)" 2>/dev/null \
	  && touch $@) || echo "checkov could not be installed into $(CHECKOV_VENV): its infra test will be skipped"

$(STAMP): pyproject.toml constraints.txt
	@scripts/prereqs.sh $(PYTHON)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[airflow,dev]"
	@touch $(STAMP)

# The project's own modules compiled to bytecode once (only changed files are compiled again): where
# PYTHONDONTWRITEBYTECODE is set (CI images often set it), every msp process, stage worker and Airflow task would
# otherwise compile them from source again, 0.3-1 s each.
BYTECODE = $(BIN)/python -m compileall -q -j 0 lakehouse jobs models schemas dags tests > /dev/null

install: $(STAMP)

prereqs:
	@scripts/prereqs.sh $(PYTHON)

demo: $(STAMP)
	@scripts/prereqs.sh $(BIN)/python
	@$(BYTECODE)
	$(BIN)/msp demo

test: $(STAMP) $(CHECKOV_STAMP)
	@scripts/prereqs.sh $(BIN)/python
	$(BIN)/ruff check .
	@$(BYTECODE)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --durations=15 -m "not e2e" $(PYTEST_ARGS)

# The end-to-end scenarios: a real Airflow (dag.test and a standalone scheduler over REST), and the crash points
# `make test` does not kill at. Minutes each, so they are a target of their own.
test-e2e: $(STAMP)
	@scripts/prereqs.sh $(BIN)/python
	@$(BYTECODE)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --durations=15 -m e2e $(PYTEST_ARGS)

# The Spark-engine tests once more on pyspark 4.1.x, the Spark of AWS Glue 6.0 (4.1.1), in a venv of their own
# (build/venv-spark41, built on first use): scripts/spark41.sh. Minutes, so not part of `make test`.
test-spark41:
	@scripts/spark41.sh $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check lakehouse schemas jobs models dags tests || true

bench: $(STAMP)
	@$(BYTECODE)
	$(BIN)/msp bench --scale tiny,small --out bench-results

bench-reference: $(STAMP)
	@$(BYTECODE)
	$(BIN)/msp bench --scale small,reference --out bench-results

airflow: $(STAMP)
	@scripts/airflow.sh start

airflow-stop:
	@scripts/airflow.sh stop

clean:
	rm -rf .msp bench-results .pytest_cache
