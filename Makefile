# Nightcast — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
UV_VERSION := 0.13.8

# The real Online Retail data set, when it sits beside the checkout (tests using it skip otherwise).
NIGHTCAST_ONLINE_RETAIL ?= $(abspath $(wildcard ../shared/datasets/online_retail/online_retail.parquet))
export NIGHTCAST_ONLINE_RETAIL

.PHONY: demo test test-deploy venv airflow env bench bench-accuracy clean lock

$(STAMP): requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	# Byte-compiled at install time: PYTHONDONTWRITEBYTECODE would otherwise leave every import uncompiled.
	# requirements-dev.txt = the image's requirements.txt + the dev extra (tests, linters, Compose).
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements-dev.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --no-deps -e .
	@touch $@

venv: $(STAMP)

.env: | $(STAMP)
	$(BIN)/nightcast env --write .env

env: .env

## Generate the demo ERP and run the nightly DAG through Airflow for a few nights.
demo: $(STAMP) .env
	set -a && . ./.env && set +a && $(BIN)/nightcast demo $(DEMO_ARGS)

## The whole suite: lint, format check, types, tests (the deployment test included:
## it skips without Docker, unless CI is set).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q $(PYTEST_ARGS)

## The docker-compose stack brought up and driven through two nights (tests/deploy/test_stack.py).
test-deploy: $(STAMP)
	$(BIN)/pytest -q -s -m deploy tests/deploy $(PYTEST_ARGS)

## Airflow UI on http://localhost:8080 with the project's DAGs (Ctrl-C stops everything).
airflow: $(STAMP) .env
	set -a && . ./.env && set +a && $(BIN)/nightcast airflow

## Re-resolve the locks from pyproject.toml (runtime: requirements.txt, the image; + dev extra:
## requirements-dev.txt; + bench extra, at the dev lock's pins: requirements-bench.txt).
lock: | $(STAMP)
	$(BIN)/uv pip compile --quiet --python-version 3.11 pyproject.toml -o requirements.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 pyproject.toml --extra dev -c requirements.txt -o requirements-dev.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 pyproject.toml --extra bench -c requirements-dev.txt -o requirements-bench.txt

bench: $(STAMP) .env
	set -a && . ./.env && set +a && $(BIN)/python bench/nightly.py $(BENCH_ARGS)

## Forecast accuracy suite (issue 12): the engine against statsforecast / mlforecast anchors on
## public data. Installs the benchmark-only lock (the `bench` extra, never in the image) first.
## BENCH_ACCURACY_ARGS e.g. "--scale 0.1 --jobs 2 --json data/bench-accuracy/results.json".
bench-accuracy: $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements-bench.txt
	$(BIN)/python bench/accuracy_suite.py $(BENCH_ACCURACY_ARGS)

clean:
	rm -rf data airflow_home .mypy_cache .ruff_cache .pytest_cache
