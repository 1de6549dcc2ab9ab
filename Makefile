# One command to run the demo, one to run the tests. Both install what they need.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
PORT   ?= 8080

.PHONY: run test lint install install-test system-deps bench lock clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(VENV)/bin/activate
	$(PIP) install -q -c requirements.lock -e .

install-test: $(VENV)/bin/activate system-deps
	$(PIP) install -q -c requirements.lock -e '.[test,libvirt]'

system-deps:
	scripts/install-system-deps.sh

## make run: the embedded product (SQLite + a simulated fleet) on http://127.0.0.1:$(PORT)
run: install
	$(VENV)/bin/gpucloud serve --demo --port $(PORT)

## make lint: ruff and mypy (configured in pyproject.toml), zero findings
lint: install-test
	$(VENV)/bin/ruff check src tests bench scripts && $(VENV)/bin/mypy

## make test: lint, then the whole suite, SQLite and PostgreSQL, libvirt, QEMU and the browser included
test: install-test lint
	$(VENV)/bin/pytest -n 2 -q

bench: install-test
	$(PY) bench/placement.py

## make lock: refresh requirements.lock after changing dependencies in pyproject.toml
lock: $(VENV)/bin/activate
	$(PIP) install -q -e '.[test,libvirt]'
	$(PIP) freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
