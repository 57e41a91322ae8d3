# Every target creates .venv itself, so a fresh machine needs only python3, pip and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install check test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[cloud,edge,dev,vision]'
	touch $(STAMP)

install: $(STAMP)

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/edgeweave demo

# every benchmark prints one JSON document; results/ keeps the latest of each (BENCHMARKS.md)
BENCHES := api sync outbox agent_rss restart hub_density mesh twin pipelines

bench: $(STAMP)
	mkdir -p bench/results
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py > bench/results/$$b.json || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build src/*.egg-info
