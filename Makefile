# platesift developer entry points. `make demo` and `make test` do all set-up on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test check lint typecheck unit bench faults model clean
TRAIN_STAMP := $(VENV)/.train-installed
DATA ?= ../shared/datasets/plates

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "installing platesift and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/pip install --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@$(BIN)/pip install -e '.[dev]' >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/platesift demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# The edit loop: lint, types and every test not marked slow (about 1.5 minutes on 2 cores).
check: lint typecheck
	$(BIN)/pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m platesift.app.bench
	$(BIN)/python -m platesift.app.bench_tracks

$(TRAIN_STAMP): $(STAMP)
	@echo "installing the training extra (TensorFlow) into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/pip install -e '.[dev,train]' >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	touch $(TRAIN_STAMP)

# Train, export, evaluate the shipped plate model (models/plates/) from the shared photos.
model: $(TRAIN_STAMP)
	$(BIN)/python -m training --data $(DATA)

faults: $(STAMP)
	$(BIN)/platesift sim faults --trials 200 --json faults-report.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
