# Two self-installing entry points: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,dask]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bayesgmm demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One worker per core, each test module kept whole on one worker (its module
# fixtures are computed once; --dist worksteal took 5:49 against 5:03), the
# longest modules first (tests/conftest.py). With the compiled and exported
# programs in bayesgmm's disk cache: 5-6.5 minutes on 2 cores (5:03 in one
# session, 6:01 in a later one when the same code as the 5:03 took 7:07),
# 9-11 minutes of CPU time; a first run after a change of bayesgmm's source
# also traces, exports and compiles them (9-15 minutes).
test: lint
	$(BIN)/python -m pytest -n auto --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/em_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
