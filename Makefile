# mlfootprint — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# pytest-xdist workers for `make test`: most tests wait on servers, so more workers than cores pay
# (measured: docs/dev/CONTRIBUTING.md#tests); the real-node tests always share one worker
WORKERS ?= 4
export MLFOOTPRINT_CACHE ?= $(HOME)/.cache/mlfootprint
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv tools lint test test-unit test-cluster faults bench demo demo-down crds lock image clean version docs dist

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=69" wheel
	$(PY) -m pip install -q --require-hashes -r requirements-dev.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed ## Create the virtual environment with pinned dependencies

tools: venv ## Install/build the real tools (etcd, control plane + kubelet, kwok, helm, prometheus, victoria-metrics, chromium, containerd, image tools)
	bash hack/install-tools.sh

lint: venv ## Checks: ruff (src, tests, benchmarks, hack, charts) and mypy --strict on src/ (settings in pyproject.toml)
	$(VENV)/bin/ruff check --no-cache src tests benchmarks hack charts
	$(VENV)/bin/mypy

test: venv lint tools ## Run the checks (make lint), then every test (unit, property, CLI, real control plane, Prometheus, Helm, browser)
	$(PY) -m pytest -n $(WORKERS) --dist loadgroup

test-unit: venv ## Only the tests that need no external servers
	$(PY) -m pytest -m "not cluster and not prometheus and not helm and not browser"

SEED ?=
DURATION ?= 600
faults: venv tools ## Longer fault campaign (docs/faults.md): make faults SEED=123 DURATION=600 (s of faults; every kind at least once)
	MLFOOTPRINT_FAULTS_SEED=$(SEED) MLFOOTPRINT_FAULTS_DURATION=$(DURATION) $(PY) -m pytest tests/faults/test_campaign.py -q -p no:cacheprovider

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

lock: ## Re-pin requirements.lock (runtime, the image's) and requirements-dev.lock (+ test tools), with hashes (uv)
	bash hack/lock.sh

image: venv ## Build the exporter/operator image without a registry or daemon: _out/mlfootprint-<version>.oci.tar
	bash hack/image/build.sh

V ?=
version: venv ## Print the version (mlfootprint.__version__); `make version V=X.Y.Z` sets it and regenerates what carries it
ifneq ($(V),)
	$(PY) hack/release/version.py --write $(V) >/dev/null
	$(MAKE) --no-print-directory crds docs >/dev/null
endif
	@$(PY) hack/release/version.py

docs: venv ## Regenerate the chart's README (from the comments of values.yaml) and the settings references in docs/exporter.md and docs/operator.md (from the models)
	$(PY) -m mlfootprint.crd.chartreadme
	$(PY) -m mlfootprint.settings_docs

dist: venv ## Wheel, sdist, packaged chart and CRD bundle of one version into _out/dist (checks version, CHANGELOG, generated files)
	bash hack/release/dist.sh

clean: ## Remove the virtual environment and caches in the tree
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks .mypy_cache .ruff_cache
