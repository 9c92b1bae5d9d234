# The two entry points of the README. Both set everything up first (idempotent).
VENV ?= .venv
OUT ?= results/demo

.PHONY: setup demo test lint

setup:
	@bash scripts/setup.sh

demo:
	@bash scripts/setup.sh --prepare experiments/demo.yaml
	$(VENV)/bin/layerwise run --out $(OUT)

test: setup
	$(VENV)/bin/python -m pytest -q --durations=15 tests

lint: setup
	$(VENV)/bin/ruff check .
