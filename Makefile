# Entry points. Every target bootstraps what it needs: a .venv is made on first use.
# Pass options to duoctl with ARGS, e.g. make deploy-aws ARGS="--region eu-west-1 --domain gitlab.example.com"
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv test lint lint-python lint-yaml lint-ansible \
        deploy-aws deploy-gcp destroy-aws destroy-gcp verify status bench deploy-hosts upgrade backup gpu-stop gpu-start clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

venv: $(STAMP) ## Create the virtualenv with the pinned dependencies

test: $(STAMP) ## Run every test group (lint, unit, integration, terraform, ansible), fastest first
	$(BIN)/python tests/run_groups.py

lint: lint-python lint-yaml lint-ansible ## ruff, mypy, yamllint, ansible-lint

lint-python: $(STAMP)
	$(BIN)/ruff check scripts tests
	$(BIN)/ruff format --check scripts tests
	$(BIN)/mypy

lint-yaml: $(STAMP)
	$(BIN)/yamllint --strict .

lint-ansible: $(STAMP)
	cd ansible && PATH="$(CURDIR)/$(BIN):$$PATH" ansible-lint --profile production --offline

deploy-aws: $(STAMP) ## Deploy everything on AWS (preflight, terraform, ansible, configure, verify)
	$(BIN)/duoctl deploy aws $(ARGS)

deploy-gcp: $(STAMP) ## Deploy everything on Google Cloud
	$(BIN)/duoctl deploy gcp $(ARGS)

destroy-aws: $(STAMP) ## Tear down the AWS deployment
	$(BIN)/duoctl destroy aws $(ARGS)

destroy-gcp: $(STAMP) ## Tear down the Google Cloud deployment
	$(BIN)/duoctl destroy gcp $(ARGS)

verify: $(STAMP) ## Verify a deployment (INVENTORY=.deploy/aws/inventory.yml by default)
	$(BIN)/duoctl verify $(if $(INVENTORY),--inventory $(INVENTORY)) $(ARGS)

status: $(STAMP) ## One screen on a deployment (ARGS="--name staging", --json)
	$(BIN)/duoctl status $(ARGS)

bench: $(STAMP) ## Measure capacity: latency and throughput over a concurrency ramp (ARGS="--name aws")
	$(BIN)/duoctl bench $(ARGS)

deploy-hosts: $(STAMP) ## Bring-your-own hosts: ansible, configure and verify (INVENTORY=...)
	@test -n "$(INVENTORY)" || { echo "Set INVENTORY=path/to/inventory.yml (see inventory/hosts.example.yml)"; exit 2; }
	$(BIN)/duoctl deploy hosts --inventory $(INVENTORY) $(ARGS)

upgrade: $(STAMP) ## Upgrade GitLab through the required stops (VERSION=X.Y.Z; ARGS="--name N --dry-run")
	@test -n "$(VERSION)" || { echo "Set VERSION=X.Y.Z, the GitLab version to reach (add ARGS=--dry-run to see the plan only)"; exit 2; }
	$(BIN)/duoctl upgrade --gitlab-version $(VERSION) $(ARGS)

backup: $(STAMP) ## Back up GitLab now, to the deployment's bucket (ARGS="--name staging")
	$(BIN)/duoctl backup $(ARGS)

gpu-stop: $(STAMP) ## Stop the GPU VM now, e.g. for the night (ARGS="--name staging")
	$(BIN)/duoctl gpu stop $(ARGS)

gpu-start: $(STAMP) ## Start the GPU VM now (ARGS="--name staging")
	$(BIN)/duoctl gpu start $(ARGS)

clean: ## Remove the virtualenvs and caches
	rm -rf $(VENV) .venv-checkov .pytest_cache .mypy_cache .ruff_cache
