# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates .venv and installs the project (with its test extras) when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lrpilot-installed
EXTRAS ?= dev,lightning,lrfree,ray
TEST_WORKERS ?= 2

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lrpilot compare configs/demo.toml

# Two pytest workers with one torch thread each use both cores without oversubscription.
# pytest exits 5 when it collects no test; that fails CI, with a message saying why.
test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --durations=15; \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi; exit $$rc

# The import contracts of pyproject.toml ([tool.importlinter]): layers, no cycles, a light deployment.
lint: $(STAMP)
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) runs
