# The two commands of the README: `make demo` and `make test`.
# Both create the virtual environment in .venv on first use (a fresh clone needs nothing else).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install benchmarks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gjj demo

test: $(STAMP)
	scripts/ensure-postgres
	$(VENV)/bin/pytest -n 2 --dist loadfile -q

benchmarks: $(STAMP)
	scripts/ensure-postgres
	$(VENV)/bin/python benchmarks/remittance_import.py --lines 100000
	$(VENV)/bin/python benchmarks/loan_daily.py --loans 2000
	$(VENV)/bin/python benchmarks/offset_run.py --loans 20000
	$(VENV)/bin/python benchmarks/projection_rebuild.py
	$(VENV)/bin/python -m benchmarks.api_load

clean:
	rm -rf $(VENV) gjj-data .pytest_cache .hypothesis
