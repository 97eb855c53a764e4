# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates .venv and installs the project (with its test extras) when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lrpilot-installed
EXTRAS ?= dev,lightning,lrfree

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lrpilot train --task digits-cnn --controller rule --out runs/demo

# pytest exits 5 when it collects no test; treat that as a failure of the suite's promise, loudly.
test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider; \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi; exit $$rc

clean:
	rm -rf $(VENV) runs
