# annoflow: `make demo` runs the demo, `make test` runs the tests. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit integration bench clean labelstudio-server

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/annoflow demo

# Label Studio for tests/integration/test_labelstudio.py: its own venv (its pins clash with ours) and a
# migrated data dir with an admin and a personal access token, so the test session starts it in seconds.
LS_VENV := .venv-labelstudio
LS_TEMPLATE := $(LS_VENV)/template

$(LS_TEMPLATE)/annoflow-test.json: tests/labelstudio/prepare.py
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet 'label-studio>=1.23,<1.24' 'sentry-sdk>=2.16,<3'
	$(LS_VENV)/bin/python tests/labelstudio/prepare.py $(LS_TEMPLATE)

labelstudio-server: $(LS_TEMPLATE)/annoflow-test.json

# Two test processes, each taking whole modules (their module fixtures start once); TEST_JOBS=0 runs in one.
TEST_JOBS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q -m integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/annoflow bench store --tasks 1000000 --json

clean:
	rm -rf $(VENV) .annoflow .pytest_cache .mypy_cache .ruff_cache
