# Thin entry points; the work lives in scripts/ and the primenet package.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PRIMENET := $(BIN)/primenet
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help setup demo down test test-unit test-integration lint bench clean images

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup:  ## Install what is missing (apt packages, dockerd, .venv, npm tools); quick when ready
	@bash scripts/bootstrap.sh

demo: setup  ## The whole network on this machine (chain, Redis, services, a miner) and a task running on it
	@bash scripts/build-task-image.sh
	@$(PRIMENET) devnet up
	@$(PRIMENET) devnet demo

down:  ## Stop what `make demo` started
	@if [ -x $(PRIMENET) ]; then $(PRIMENET) devnet down; fi

images: setup  ## Service, chain and Redis images, offline (local debootstrap base); cached, prints the sizes
	@bash scripts/build-images.sh

lint: setup  ## ruff, mypy, import-linter (the floors), yamllint, ansible-lint
	$(BIN)/ruff check services tests bench infra
	$(BIN)/ruff format --check services tests bench infra
	$(BIN)/mypy
	MYPYPATH=tests $(BIN)/mypy bench
	MYPYPATH=infra/coordinator:infra/coordinator/tests $(BIN)/mypy --strict --explicit-package-bases infra/coordinator
	$(BIN)/lint-imports
	@$(MAKE) --no-print-directory lint-ansible

test: setup lint images  ## The whole suite: lint, the images, unit, integration and e2e tests, every Molecule scenario
	$(BIN)/pytest
	@$(MAKE) --no-print-directory molecule

test-unit: setup  ## Only the tests that need no servers
	$(BIN)/pytest -m unit

test-integration: setup  ## Only the tests against real Anvil, Redis, dockerd
	$(BIN)/pytest -m integration

bench: setup  ## Benchmarks (ratios measured in one run)
	$(BIN)/python bench/auth.py
	$(BIN)/python bench/chain.py
	$(BIN)/python bench/challenge.py
	$(BIN)/python bench/discovery.py
	$(BIN)/python bench/heartbeat.py
	$(BIN)/python bench/registration.py
	$(BIN)/python bench/onboarding.py

clean:  ## Remove caches (keeps .venv and node_modules)
	rm -rf .mypy_cache .ruff_cache .pytest_cache .cache

.PHONY: contracts
contracts:  ## Compile contracts/src (solcjs) into contracts/artifacts: the ABI + bytecode the Python code loads
	node contracts/tools/build-artifacts.js

# --- Ansible: provisioning roles and playbooks -------------------------------------------------
.PHONY: molecule molecule-prereqs lint-ansible

molecule-prereqs: setup  ## Local Debian 12/13 test images and Ansible collections (both cached)
	@bash scripts/build-test-images.sh
	@bash scripts/ansible-collections.sh

molecule: molecule-prereqs  ## Every Molecule scenario of roles/ and playbooks/ (SCENARIOS="dir:scenario ..." for some)
	@bash scripts/molecule.sh $(SCENARIOS)

lint-ansible: setup  ## yamllint and ansible-lint (production profile) over roles, playbooks, inventories
	@bash scripts/ansible-collections.sh
	$(BIN)/yamllint -s roles playbooks inventories .yamllint .ansible-lint
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/collections $(BIN)/ansible-lint
