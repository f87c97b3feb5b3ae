# c10k-bench. `make bench` and `make test` bootstrap .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: bench bench-quick bench-peers bench-capacity ceiling test lint micro units regress clean-venv

# (Re)install only when .venv is missing or pyproject.toml changed.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

bench: $(STAMP)
	$(PY) runner.py bench

bench-quick: $(STAMP)
	$(PY) runner.py bench --quick

# The four models beside every reference server (asyncio-streams, gevent, uvloop too).
bench-peers: $(STAMP)
	$(PY) runner.py bench --strategies all

# The knee of each server: open-loop rate raised until it is no longer held.
bench-capacity: $(STAMP)
	$(PY) runner.py bench --mode capacity --strategies thread,goroutine,asyncio --connections 1000,10000

# What one loadgen core offers here (~3 min); bench's auto rate cap is sized from it.
ceiling: $(STAMP)
	$(PY) runner.py ceiling

micro: $(STAMP)
	$(PY) runner.py micro

# What one goroutine, task, greenlet, thread and process cost here (~5 min; see README).
units: $(STAMP)
	$(PY) runner.py units

# The work tree against BASE (default HEAD~1, or HEAD when the tree has changes), both in
# one sitting: instruction counts under valgrind gate, time is secondary (bench/cmd_regress.py).
regress: $(STAMP)
	$(PY) runner.py regress $(if $(BASE),--base $(BASE))

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean-venv:
	rm -rf $(VENV)
