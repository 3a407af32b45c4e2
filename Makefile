# Two commands for a newcomer: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENVS := .venvs
AIRFLOW_PY := $(VENVS)/airflow/bin/python
CONTAINER_PY := $(VENVS)/container/bin/python
# The container environment of the default AWS image (Python 3.10, torch 2.0.1): see pyproject.toml.
PYTHON310 ?= $(shell for py in python3.10 $$HOME/.pyenv/versions/3.10.13/bin/python3.10; do \
	$$py -c 'import sys; print(sys.executable)' 2>/dev/null && break; done)
IMAGE_PY := $(VENVS)/container-image/bin/python
# The SageMaker Python SDK's two majors, each beside the runtime it is tested against (tests/sdk).
SDK_V2_PY := $(VENVS)/sdk-v2/bin/python
SDK_V3_PY := $(VENVS)/sdk-v3/bin/python
# The make variable naming the interpreter an environment is created with, when not PYTHON.
PYTHON_VARIABLE_container-image := PYTHON310
UV_VERSION := 0.13.8
UV := $(VENVS)/uv/bin/uv
PYTEST_ARGS ?=
# pytest-xdist: a worker per core, a test module whole on one worker (its module fixtures once),
# modules handed out in the order tests/conftest.py sorts them (the longest first, not xdist's
# reorder by number of tests); `PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= auto
PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder
NAMED_PYTHON = "$(or $(PYTHON_VARIABLE_$(1)),PYTHON)=$($(or $(PYTHON_VARIABLE_$(1)),PYTHON))"
# pytest exits 5 when a suite collects no test; that is not a failure of the suite.
PYTEST_OK = rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc

.PHONY: help envs image-env sdk-envs lock demo test test-fast lint format up down status clean browser compose-env bench-rules screenshots

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

envs: $(VENVS)/airflow/.installed $(VENVS)/container/.installed  ## Create the two Python environments the pipeline runs in, from their locks

image-env: $(VENVS)/container-image/.installed  ## Create the default AWS image's container environment (Python 3.10, torch 2.0.1) the tests also use

sdk-envs: $(VENVS)/sdk-v2/.installed $(VENVS)/sdk-v3/.installed  ## Create the SageMaker Python SDK v2 and v3 environments of the conformance suite

lock: $(UV)  ## Refresh locks/<env>.txt from pyproject.toml (after changing a dependency group)
	$(PYTHON) -m devtools.envs lock $(UV)

# uv builds the environments; make installs this pinned version of it with the Python's own pip.
$(UV):
	@$(PYTHON) -m pip --version >/dev/null 2>&1 || { echo "make installs uv with pip, which $(PYTHON) lacks: install python3-pip (or put uv $(UV_VERSION) at $(UV))"; exit 1; }
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(VENVS)/uv uv==$(UV_VERSION)

# A stamp per environment (declared in pyproject.toml): uv syncs it again when its lock changes.
$(VENVS)/%/.installed: locks/%.txt | $(UV)
	$(PYTHON) -m devtools.envs build $(UV) $* $(VENVS)/$* $(call NAMED_PYTHON,$*)
	@touch $@

browser:  ## Install Debian's chromium for the browser test (needs root and apt)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: envs  ## Run the whole pipeline locally on a generated dataset and print what happened
	$(AIRFLOW_PY) -m demo.run

test: envs image-env sdk-envs browser lint  ## The full test suite (unit and end-to-end), every environment
	$(CONTAINER_PY) -m pytest tests/container $(PARALLEL) $(PYTEST_ARGS); $(PYTEST_OK)
	$(IMAGE_PY) -m pytest tests/container $(PARALLEL) $(PYTEST_ARGS); $(PYTEST_OK)
	$(SDK_V2_PY) -m pytest tests/sdk/v2 $(PARALLEL) $(PYTEST_ARGS); $(PYTEST_OK)
	$(SDK_V3_PY) -m pytest tests/sdk/v3 $(PARALLEL) $(PYTEST_ARGS); $(PYTEST_OK)
	$(AIRFLOW_PY) -m pytest tests --ignore=tests/container --ignore=tests/sdk $(PARALLEL) $(PYTEST_ARGS); $(PYTEST_OK)

test-fast: envs image-env  ## Only the fast unit tests
	$(CONTAINER_PY) -m pytest tests/container -m "not e2e" $(PARALLEL) $(PYTEST_ARGS); $(PYTEST_OK)
	$(IMAGE_PY) -m pytest tests/container -m "not e2e" $(PARALLEL) $(PYTEST_ARGS); $(PYTEST_OK)
	$(AIRFLOW_PY) -m pytest tests --ignore=tests/container --ignore=tests/sdk -m "not e2e" $(PARALLEL) $(PYTEST_ARGS); $(PYTEST_OK)

# Trains a labelled corpus once (kept in benchmarks/results/rule-corpus/), then judges it with every
# tensor rule; a second run only re-evaluates. BENCH_ARGS: e.g. --record, --jobs 3.
bench-rules: envs  ## How often each Debugger rule is right (benchmarks/bench_rules.py)
	nice -n 10 $(AIRFLOW_PY) benchmarks/bench_rules.py $(BENCH_ARGS)

# The browser test against a real stack and two runs (36 minutes on two shared cores), writing its screenshots.
screenshots: envs browser  ## Regenerate the UI screenshots in docs/ (tests/ui/test_ui_e2e.py)
	SCREENSHOT_DIR=$(CURDIR)/docs nice -n 10 $(AIRFLOW_PY) -m pytest tests/ui/test_ui_e2e.py $(PYTEST_ARGS)

lint: $(VENVS)/airflow/.installed  ## ruff check and format check
	$(VENVS)/airflow/bin/ruff check .
	$(VENVS)/airflow/bin/ruff format --check .

format: $(VENVS)/airflow/.installed  ## Apply ruff's fixes and formatting
	$(VENVS)/airflow/bin/ruff check --fix .
	$(VENVS)/airflow/bin/ruff format .

up: envs  ## Start the local SageMaker runtime and the Airflow UI (prints URL and admin password)
	$(AIRFLOW_PY) -m devtools.stack up

down:  ## Stop exactly what `make up` started
	@test -x $(AIRFLOW_PY) && $(AIRFLOW_PY) -m devtools.stack down || true

status:  ## Show what `make up` started and whether it still runs
	$(AIRFLOW_PY) -m devtools.stack status

compose-env:  ## Generate the secrets docker compose needs into .env (kept when already there)
	$(PYTHON) devtools/compose_env.py .env

clean: down  ## Remove local state (runtime data, Airflow home, demo output); keeps the environments
	rm -rf .local_sagemaker .airflow .demo .run
