# cookiegate: `make demo` and `make test` do all set-up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# the demo records every consent event (proof of consent) in a SQLite file
DEMO_RECORDS ?= sqlite:///.demo/consent.db

.PHONY: install demo demo-flask test lint typecheck unit bench format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@echo "cookiegate demo (Starlette) on http://$(HOST):$(PORT)/  (consent records: $(DEMO_RECORDS))"
	@mkdir -p .demo
	COOKIEGATE_RECORDS=$(DEMO_RECORDS) $(BIN)/python -m uvicorn examples.starlette_app.app:app --host $(HOST) --port $(PORT)

demo-flask: $(STAMP)
	@echo "cookiegate demo (Flask) on http://$(HOST):$(PORT)/  (consent records: $(DEMO_RECORDS))"
	@mkdir -p .demo
	COOKIEGATE_RECORDS=$(DEMO_RECORDS) $(BIN)/python -m flask --app examples.flask_app.app:app run --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

format: $(STAMP)
	$(BIN)/ruff format src tests examples benchmarks
	$(BIN)/ruff check --fix src tests examples benchmarks

# every performance target in one run (benchmarks/all.py: run.py, rewrite_bench.py,
# records_bench.py, then one summary table); `make bench BENCH_ARGS=--quick` for a
# smoke test, BENCH_ARGS=--strict to exit 1 when a target is missed
BENCH_ARGS ?=
bench: $(STAMP)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python benchmarks/all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
