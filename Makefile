# sovereign-ml: every install step lives here so a fresh clone needs only `make demo` / `make test`.
# Virtualenvs are rebuilt when their lock file changes (stamp files). Tools whose pins conflict
# get their own venv and are called as processes: checkov (packaging==23.2), Triton (numpy<2).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOVML := $(VENV)/bin/sovml
PIP_FLAGS := --quiet --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help setup system-packages demo test lint fmt golden bench clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

# torch first and exact: 2.13.0 resolves to the local CPU wheel, never a CUDA download.
$(VENV)/.stamp: requirements/main.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) torch==2.13.0
	$(PY) -m pip install $(PIP_FLAGS) -r requirements/main.txt
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

# Every tool virtualenv the same way: .venv-<name> from requirements/<name>.txt. Tools whose pins
# conflict with the main lock live there and are called as processes: checkov (packaging==23.2),
# the CrossGuard pack (protobuf 5; policies/PulumiPolicy.yaml points the CLI at .venv-policy),
# Triton (numpy<2) and the drift benchmark's evidently baseline. The venvs in TORCH_FIRST get the
# local CPU torch wheel before their lock, so nothing resolves torch to a CUDA download.
TORCH_FIRST := triton
.venv-%/.stamp: requirements/%.txt
	$(PYTHON) -m venv .venv-$*
	$(if $(filter $*,$(TORCH_FIRST)),.venv-$*/bin/python -m pip install $(PIP_FLAGS) torch==2.13.0)
	.venv-$*/bin/python -m pip install $(PIP_FLAGS) -r $<
	touch $@

setup: $(VENV)/.stamp .venv-checkov/.stamp .venv-policy/.stamp .venv-triton/.stamp ## Create the virtualenvs (pinned)

# Real servers the tests talk to, from Debian's packages: Redis (Feast's production online store),
# Prometheus (promtool for the alert rules; the server for the rollout analysis queries) and
# Chromium (renders the evidence page headless, tests/test_evidence.py).
# Installed only where missing and only as root; elsewhere the tests that need them skip, unless
# SOVML_REQUIRE_SERVERS=1 (set by .ci/run) turns a missing server into a failure.
SYSTEM_PACKAGES := redis-server:redis-server promtool:prometheus prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager chromium:chromium

system-packages: ## Install Redis and Prometheus from Debian's packages where missing (root)
	@missing=$$(for pair in $(SYSTEM_PACKAGES); do command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; done | sort -u | tr '\n' ' '); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages: $$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "note: missing $$missing (needs root + apt-get); the tests that need them will skip"; \
	fi

demo: setup ## Set up, then run the showcase on the embedded defaults
	$(SOVML) demo

test: setup system-packages ## Set up, then run the whole test suite and the policy gate on every stack
	$(PY) -m pytest -q
	$(SOVML) check --all

lint: setup ## ruff + black (check only)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/black --check .

fmt: setup ## Format and autofix
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/black .

golden: setup ## Regenerate golden files after reviewing a deliberate change
	$(PY) -m pytest -q tests/test_program.py --update-golden

bench: setup .venv-evidently/.stamp ## Benchmarks (ratios against named baselines, same run)
	$(PY) benchmarks/drift.py
	$(PY) benchmarks/cpu_inference.py
	$(SOVML) bench serve
	$(SOVML) bench abtest
	$(PY) benchmarks/features.py
	$(PY) benchmarks/fleet.py --tenants 100
	$(PY) benchmarks/artifacts.py

clean: ## Remove build output (keeps the virtualenvs)
	rm -rf build .pytest_cache .hypothesis
