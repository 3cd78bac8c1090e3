# Two commands for a newcomer, each installing what it needs into .venv:
#   make run    the main job on the embedded defaults (no keys, no servers)
#   make test   the whole test suite (Redis and PostgreSQL on 127.0.0.1)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow torture backtest-kills bench lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "botwarden needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/botwarden demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every core: each test file on one worker (a file's tests share its servers and names).
test: lint
	$(BIN)/python -m pytest -n auto --dist loadfile

# The proof CI runs: 2,000 simulated seeds (every fault kind), 40 seeds of a month
# each (every restart recovers beside a month of history), 100 trials of real
# processes killed with SIGKILL, and 10 more whose bots start beside 2,000 records of
# their own past (on the exchange and in the state), zero violations.
torture: $(STAMP)
	$(BIN)/botwarden torture --seeds 2000
	$(BIN)/botwarden torture --seeds 40 --days 30 --seed-base 100000
	$(BIN)/botwarden torture --real --trials 100
	$(BIN)/botwarden torture --real --trials 10 --history 2000 --seed-base 100

# The long crash campaign: 500 kill -9 trials per backend.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -v

# Backtests killed with SIGKILL 4 times each, 50 seeds: the same trades every time.
backtest-kills: $(STAMP)
	BOTWARDEN_KILL_SEEDS=50 $(BIN)/python -m pytest tests/backtest/test_kills.py -q

bench: $(STAMP)
	$(BIN)/python benchmarks/state_store.py
	$(BIN)/python benchmarks/protection.py
	$(BIN)/python benchmarks/cli.py
	$(BIN)/python benchmarks/history.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/backtest.py

clean:
	rm -rf $(VENV) examples/state .pytest_cache .ruff_cache
