# gopro-deblur: `make demo`, `make test`, `make bench`. Only Python 3.11 and make are needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO ?= demo
export KERAS_BACKEND := tensorflow
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test lint bench clean-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The whole pipeline on the built-in synthetic sample, in $(DEMO)/.
demo: $(VENV)/.installed
	$(VENV)/bin/gopro-prep sample --out $(DEMO)/GOPRO_Large --scenes 6 --frames 6 --size 320x180 --seed 0
	$(VENV)/bin/gopro-prep organize --raw $(DEMO)/GOPRO_Large --out $(DEMO)/organized

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	@for b in benchmarks/bench_*.py; do [ -e "$$b" ] || continue; echo "# $$b"; $(PY) "$$b" || exit 1; done

clean-demo:
	rm -rf $(DEMO)
