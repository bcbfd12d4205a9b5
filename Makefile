# sovereign-ml: every install step lives here so a fresh clone needs only `make demo` / `make test`.
# Virtualenvs are rebuilt when their lock file changes (stamp files). Tools whose pins conflict
# get their own venv and are called as processes: checkov (packaging==23.2), Triton (numpy<2).

# bash for $$SECONDS (each venv recipe prints how long it took).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOVML := $(VENV)/bin/sovml
PIP_FLAGS := --quiet --disable-pip-version-check

# Installer of the pinned locks: uv (about 10x faster than pip here) from its own bootstrap venv,
# pip where uv is unavailable. INSTALLER=auto (default) tries uv and falls back to pip when uv
# cannot be installed; INSTALLER=uv insists on it; INSTALLER=pip never uses it. Either way the
# same requirements/*.txt are installed, exactly, into venvs made by `python -m venv` (the same
# bundled pip and setuptools as before). torch always goes in first, from the local CPU wheel
# (install_torch), so the lock's `torch==2.13.0+cpu` is then already satisfied and nothing
# resolves torch to a CUDA download.
INSTALLER ?= auto
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
# Bytecode: uv writes none at install (pip compiles every file: 23,600 in .venv, about 90 s of
# CPU, of which a run imports a sixth). Python writes each module's .pyc when it first imports
# it, so the recipes below run with PYTHONDONTWRITEBYTECODE unset: where it is set (as on this
# machine) every process compiled torch, onnx and feast again, minutes over a demo.
UV_FLAGS := --quiet
unexport PYTHONDONTWRITEBYTECODE
# The installer a venv recipe uses: uv when its bootstrap venv holds it and pip is not forced.
USE_UV = [ "$(INSTALLER)" != pip ] && [ -x $(UV) ]
# install DIR ARGS: the pinned ARGS into the venv DIR with the chosen installer.
install = if $(USE_UV); then $(UV) pip install $(UV_FLAGS) --python $(1)/bin/python $(2); \
	else $(1)/bin/python -m pip install $(PIP_FLAGS) $(2); fi
# install_torch DIR: the CPU torch wheel into the venv DIR, alone (its dependencies come with the
# lock right after). pip finds the local wheel through PIP_FIND_LINKS when asked for
# `torch==2.13.0`. uv does not read that variable: it gets the same folders, offline
# (--no-index), and the `+cpu` build by its exact version, so it installs that file or nothing
# (6 s against pip's 25 s here, measured when both compiled bytecode); where it cannot, pip does
# it as before.
install_torch = { $(USE_UV) && [ -n "$${PIP_FIND_LINKS:-}" ] && $(UV) pip install $(UV_FLAGS) \
	--python $(1)/bin/python --no-index --no-deps \
	$$(for d in $$PIP_FIND_LINKS; do printf -- '--find-links %s ' "$$d"; done) torch==2.13.0+cpu; } \
	|| $(1)/bin/python -m pip install $(PIP_FLAGS) torch==2.13.0
# timed NAME: printed last in a venv recipe (bash's $$SECONDS counts from the recipe's start).
timed = echo "setup: $(1) in $${SECONDS}s ($$($(USE_UV) && echo uv || echo pip))"

.DEFAULT_GOAL := help
.PHONY: help setup system-packages demo test lint fmt golden bench clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

# The installer's own venv: pip installs the pinned uv (requirements/uv.txt); where that fails
# (no uv wheel for this platform, no index), INSTALLER=auto leaves it out and pip does the rest.
$(UV_VENV)/.stamp: requirements/uv.txt
	@if [ "$(INSTALLER)" = pip ]; then exit 0; fi; \
	$(PYTHON) -m venv $(UV_VENV) && $(UV_VENV)/bin/python -m pip install $(PIP_FLAGS) -r $< \
		|| { [ "$(INSTALLER)" = auto ] && rm -rf $(UV_VENV) \
			&& echo "note: uv unavailable, installing with pip"; } && \
	{ [ ! -d $(UV_VENV) ] || touch $@; }

# torch first, alone, from the local CPU wheel (install_torch): never a CUDA download.
$(VENV)/.stamp: requirements/main.txt pyproject.toml | $(UV_VENV)/.stamp
	@set -e; $(PYTHON) -m venv $(VENV); \
	$(call install_torch,$(VENV)); \
	$(call install,$(VENV),-r requirements/main.txt); \
	$(call install,$(VENV),--no-deps -e .); \
	touch $@; $(call timed,$(VENV))

# Every tool virtualenv the same way: .venv-<name> from requirements/<name>.txt. Tools whose pins
# conflict with the main lock live there and are called as processes: checkov (packaging==23.2),
# the CrossGuard pack (protobuf 5; policies/PulumiPolicy.yaml points the CLI at .venv-policy),
# Triton (numpy<2), the MLflow tracking server (gunicorn, importlib_metadata) and the drift
# benchmark's evidently baseline. The venvs in TORCH_FIRST get the
# local CPU torch wheel before their lock, so nothing resolves torch to a CUDA download.
TORCH_FIRST := triton
.venv-%/.stamp: requirements/%.txt | $(UV_VENV)/.stamp
	@set -e; $(PYTHON) -m venv .venv-$*; \
	$(if $(filter $*,$(TORCH_FIRST)),$(call install_torch,.venv-$*);) \
	$(call install,.venv-$*,-r $<); \
	touch $@; $(call timed,.venv-$*)

# The virtualenvs are independent: built side by side (SETUP_JOBS at a time), so a fresh clone
# waits for the slowest (.venv, torch and the main lock) rather than the sum of all five.
SETUP_JOBS ?= 3
VENVS := $(VENV)/.stamp .venv-checkov/.stamp .venv-policy/.stamp .venv-triton/.stamp .venv-mlflow/.stamp
setup: ## Create the virtualenvs (pinned)
	@$(MAKE) --no-print-directory -j $(SETUP_JOBS) $(VENVS)

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

# The set-up's seconds go into the demo's closing table beside each step's (one total, clone to
# summary); each venv built also prints its own time.
demo: ## Set up, then run the showcase on the embedded defaults (each phase timed)
	@SECONDS=0; $(MAKE) --no-print-directory -s setup && $(SOVML) demo --setup-seconds $$SECONDS

# Three xdist workers on the two cores: many tests wait on real servers (Triton, Prometheus, MLflow)
# and a third worker fills those waits (fresh clones, 2026-12-06: 9m51s against 10m29s with two).
# Whole modules per worker (--dist loadfile), so module state, module fixtures and fixed build/
# paths never race. Session fixtures are built once per worker.
# Not loadgroup: with pytest 9.2 and xdist 3.8 a static xdist_group mark was split across workers;
# tests/conftest.py's scheduler hook keeps the modules of the one shared training run together.
# TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 3
test: setup system-packages ## Set up, then run the whole test suite and the policy gate on every stack
	$(PY) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)
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
