# gopro-deblur: `make demo`, `make test`, `make bench`. Only Python 3.11 and make are needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export KERAS_BACKEND := tensorflow
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test lint bench install clean-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The whole pipeline on the built-in synthetic sample, in demo/ (settings: configs/demo.yaml).
DEMO_CFG := configs/demo.yaml
DEMO_GEN := demo/runs/deblurgan/generator
demo: $(VENV)/.installed
	rm -rf demo
	$(VENV)/bin/gopro-prep sample --out demo/GOPRO_Large --scenes 6 --frames 6 --size 320x180 --seed 0
	$(VENV)/bin/gopro-prep organize --config $(DEMO_CFG)
	$(VENV)/bin/gopro-prep shard --config $(DEMO_CFG)
	$(VENV)/bin/gopro-prep inspect demo/shards --dump demo/inspect --samples 4
	$(VENV)/bin/trainctl fit $(DEMO_CFG)
	$(VENV)/bin/trainctl versions $(DEMO_CFG)
	$(VENV)/bin/trainctl evaluate $(DEMO_CFG) --out demo/metrics.json
	$(VENV)/bin/trainctl deblur --model $(DEMO_GEN)/$$(cat $(DEMO_GEN)/latest) \
	    demo/organized/test/A --out demo/deblurred
	$(PY) scripts/demo_grid.py $(DEMO_GEN)/$$(cat $(DEMO_GEN)/latest) demo/organized docs/demo_grid.png

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	@for b in benchmarks/bench_*.py; do [ -e "$$b" ] || continue; echo "# $$b"; $(PY) "$$b" || exit 1; done

clean-demo:
	rm -rf demo
