# gopro-deblur: `make demo`, `make test`, `make bench`. Only Python 3.11 and make are needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export KERAS_BACKEND := tensorflow
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test lint bench gpu-check install clean-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The whole pipeline on the built-in synthetic sample, in demo/: one dataset, two models (DeblurGAN:
# configs/demo.yaml, NAFNet: configs/demo-nafnet.yaml), both scored on the held-out scene; the better one
# deblurs that scene and draws docs/demo_grid.png.
GAN_CFG := configs/demo.yaml
NAF_CFG := configs/demo-nafnet.yaml
demo: $(VENV)/.installed
	rm -rf demo
	$(VENV)/bin/gopro-prep sample --out demo/GOPRO_Large --scenes 6 --frames 6 --size 320x180 --seed 0
	$(VENV)/bin/gopro-prep organize --config $(GAN_CFG)
	$(VENV)/bin/gopro-prep shard --config $(GAN_CFG)
	$(VENV)/bin/gopro-prep inspect demo/shards --dump demo/inspect --samples 4
	$(VENV)/bin/trainctl fit $(GAN_CFG)
	$(VENV)/bin/trainctl fit $(NAF_CFG)
	$(VENV)/bin/trainctl versions $(GAN_CFG)
	$(VENV)/bin/trainctl versions $(NAF_CFG)
	$(VENV)/bin/trainctl evaluate $(GAN_CFG) --out demo/metrics-deblurgan.json
	$(VENV)/bin/trainctl evaluate $(NAF_CFG) --out demo/metrics-nafnet.json
	$(PY) scripts/demo_compare.py deblurgan=demo/metrics-deblurgan.json nafnet=demo/metrics-nafnet.json \
	    --best-file demo/best
	$(VENV)/bin/trainctl deblur --model demo/runs/$$(cat demo/best) demo/organized/test/A --out demo/deblurred
	$(PY) scripts/demo_grid.py demo/organized demo/deblurred docs/demo_grid.png

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# One pytest worker per core, at most 4 (each holds a TensorFlow); worksteal evens out the long fits.
test: lint
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist worksteal

bench: $(VENV)/.installed
	@for b in benchmarks/bench_*.py; do [ -e "$$b" ] || continue; echo "# $$b"; $(PY) "$$b" || exit 1; done

# A GPU VM measured in one command, under 8 minutes (JSON lines): devices and precisions, the NAFNet-32 and
# DeblurGAN steps in float32 / mixed_float16 / + XLA, MirroredStrategy over every GPU vs one, a mixed_float16 fit
# against float32, 720p deblurring, the GoPro recipes' hours (extrapolated). Without a GPU: exit 2.
gpu-check: $(VENV)/.installed
	$(PY) benchmarks/gpu_check.py

clean-demo:
	rm -rf demo
