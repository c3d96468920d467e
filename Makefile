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
	$(VENV)/bin/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) gjj-data .pytest_cache .hypothesis
