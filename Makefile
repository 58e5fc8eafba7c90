# cqdlaser: `make run` (set up and run the main job) and `make test` (the verification suite).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MPIRUN := $(VENV)/bin/mpirun
NP ?= 2
OUT ?= results

# First Python >= 3.12: on PATH, then pyenv's versions (whether or not pyenv is active).
find_python = $(firstword $(foreach c,python3.13 python3.12 python3 \
	$(wildcard $(shell pyenv root 2>/dev/null)/versions/3.1[2-9]*/bin/python3) \
	$(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3), \
	$(shell command -v $(c) >/dev/null 2>&1 && $(c) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && command -v $(c))))

.PHONY: all install run test test-fast test-serial test-mpi lint bench clean

all: install

$(VENV)/.installed: pyproject.toml
	@py="$(find_python)"; \
	if [ -z "$$py" ]; then \
	  echo "error: cqdlaser needs Python >= 3.12 (the DOLFINx wheel requires it)." >&2; \
	  echo "       None was found on PATH (python3.13, python3.12, python3) or under pyenv's versions." >&2; \
	  echo "       Install one (e.g. 'pyenv install 3.12') and run make again." >&2; \
	  exit 1; \
	fi; \
	echo "using $$py ($$($$py --version))"; \
	[ -x $(PY) ] || $$py -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dolfinx,test]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/cqdlaser run paper --quick --out $(OUT)

test: test-serial test-mpi

test-fast: install
	$(PY) -m pytest -q -m "not study and not example"

test-serial: install
	$(PY) -m pytest -q

test-mpi: install
	$(MPIRUN) -n $(NP) $(PY) -m mpi4py -m pytest -q -m "not serial" -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) benchmarks/bench_meshes.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
