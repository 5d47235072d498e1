# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) app.py

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Benchmarks (≈ 10 min; BENCH_ARGS="--quick" or "--only ack"): see BENCHMARKS.md. The profiles need
# py-spy (installed here, for the harness only); wrk is used when installed (apt-get install wrk).
bench: $(STAMP)
	@$(PY) -m pip show py-spy >/dev/null 2>&1 || $(PY) -m pip install --quiet py-spy || true
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
