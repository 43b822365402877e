# mlfootprint — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export MLFOOTPRINT_CACHE ?= $(HOME)/.cache/mlfootprint
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv tools test test-unit test-cluster bench demo demo-down crds lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=69" wheel
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed ## Create the virtual environment with pinned dependencies

tools: venv ## Install/build the real tools the tests use (etcd, kube-apiserver, kwok, helm, prometheus, victoria-metrics, chromium)
	bash hack/install-tools.sh

test: venv tools ## Run every test (unit, property, CLI, real control plane, Prometheus, Helm, browser)
	$(PY) -m pytest

test-unit: venv ## Only the tests that need no external servers
	$(PY) -m pytest -m "not cluster and not prometheus and not helm and not browser"

bench: venv ## Run the benchmarks and print the measured figures
	bash hack/bench.sh

demo: venv tools ## The main job: local control plane, simulated GPU nodes, exporter, operator, sample workloads
	bash hack/demo.sh

demo-down: ## Stop everything `make demo` started
	bash hack/demo-down.sh

crds: venv ## Regenerate crds/, the chart's copy, docs/crds.md and the chart's factors schema from the pydantic models
	$(PY) -m mlfootprint.crd.generate --out crds
	$(PY) -m mlfootprint.crd.reference > docs/crds.md
	$(PY) -m mlfootprint.crd.chartschema

lock: ## Re-pin requirements.lock from pyproject.toml
	$(PYTHON) -m pip install -q uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock

clean: ## Remove the virtual environment and caches in the tree
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks
