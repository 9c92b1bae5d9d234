# The two entry points of the README, and the tests. All set everything up first (idempotent).
VENV ?= .venv
OUT ?= results/demo

.PHONY: setup demo test test-fast lint

setup:
	@bash scripts/setup.sh

demo:
	@bash scripts/setup.sh --prepare experiments/demo.yaml
	$(VENV)/bin/layerwise run --out $(OUT)

test: setup
	$(VENV)/bin/python -m pytest -q --durations=15 tests

# The inner loop: no Ray, no training (tests/conftest.py marks those `slow`).
test-fast: setup
	$(VENV)/bin/python -m pytest -q --durations=10 -m "not slow" tests

lint: setup
	$(VENV)/bin/ruff check .
