# Nebula: every target sets itself up. `make demo` and `make test` work on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-kernels-nojit bench lint clean system-deps

system-deps:
	@sh scripts/ensure-system.sh

$(STAMP): pyproject.toml scripts/ensure-system.sh
	@sh scripts/ensure-system.sh
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	$(BIN)/python -m compileall -q nebula kernels
	$(BIN)/python -m nebula.warmup
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/nebula demo

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/kernels

$(VENV)/.bench-stamp: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[all,dev,bench]'
	@touch $(VENV)/.bench-stamp

bench: $(VENV)/.bench-stamp
	$(BIN)/python -m compileall -q nebula kernels
	$(BIN)/python -m benchmarks.run

lint: install
	$(BIN)/ruff check nebula kernels tests benchmarks

clean:
	rm -rf $(VENV) demo-output .nebula build *.egg-info
