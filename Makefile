# Two commands for a newcomer: `make run` and `make test`.
# `make run` installs only what the service needs (requirements.txt, stamp .installed-run); `make test`
# (and `make install`, which CI runs) adds the development requirements (stamp .installed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run demo test test-integration litellm-venv install bench soak audit clean

$(RUN_STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(RUN_STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP) $(RUN_STAMP)

install: $(STAMP)

run: $(RUN_STAMP)
	$(PY) app.py

# The service judging a multilingual chat (examples/chat.jsonl) with a fake LLM, a few seconds: see
# README, "make demo". The same replay tool against any deployment: python -m examples.replay --help.
demo: $(RUN_STAMP)
	$(PY) -m examples.demo

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The app against a REAL LiteLLM proxy (tests/integration/, not part of `make test`; about a minute
# the first time: litellm[proxy] pinned in requirements-integration.txt goes into its own venv).
LITELLM_VENV  := .venv-litellm
LITELLM_STAMP := $(LITELLM_VENV)/.installed

$(LITELLM_STAMP): requirements-integration.txt
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LITELLM_VENV)/bin/python -m pip install --quiet -r requirements-integration.txt
	touch $(LITELLM_STAMP)

litellm-venv: $(LITELLM_STAMP)

test-integration: $(STAMP) $(LITELLM_STAMP)
	LITELLM_BIN=$(CURDIR)/$(LITELLM_VENV)/bin/litellm $(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

# Benchmarks (≈ 10 min; BENCH_ARGS="--quick", "--only ack", "--against HEAD~1", "--server uvicorn"):
# see BENCHMARKS.md. wrk is installed when missing and we are root; else the bench's own driver is used.
bench: $(STAMP)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && export DEBIAN_FRONTEND=noninteractive \
		&& { apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; } >/dev/null 2>&1; } \
		|| echo "wrk is not installed: the bench's Python driver stands in"
	$(PY) -m bench $(BENCH_ARGS)

# The soak (≈ 10 min; not part of `make test`): mixed traffic with injected faults on real processes,
# ending with the books balanced and RSS flat. SOAK_SECONDS=60 for a short run; SOAK_ROUTER_DOWN_S
# (default 20) is the router outage; the figures go to stdout and to SOAK_REPORT. See RELIABILITY.md.
SOAK_SECONDS ?= 600
soak: $(STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) -m pytest -q -s -p no:cacheprovider -o timeout=0 tests/hardening/test_soak.py

# Code checks CI runs before the tests: no private names of third-party packages (.ci/private_names.py).
.PHONY: lint
lint:
	$(PYTHON) .ci/private_names.py .

# Known vulnerabilities in the pinned requirements (pip-audit; PyPI's vulnerability service, then OSV).
audit: $(STAMP)
	$(PY) .ci/audit.py requirements.txt

clean:
	rm -rf $(VENV) $(LITELLM_VENV) .pytest_cache
