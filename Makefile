# The classroom's commands. `make help` lists them.
#   make deploy                   bring up the classroom on this machine
#   make deploy CONFIG=classroom.yml INVENTORY=hosts.yml   your settings, other hosts
#   make test                     everything CI runs
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
CONFIG ?=
INVENTORY ?=
DELETE_VOLUMES ?=
PYTEST_ARGS ?=

BIN := $(VENV)/bin
CONFIG_ARG := $(if $(CONFIG),--config $(CONFIG))
INVENTORY_ARG := $(if $(INVENTORY),--inventory $(INVENTORY))
DRIVER := $(BIN)/python ansible/classroom.py

.PHONY: help deploy remove validate hash-password data verify-artifact prestart test test-unit test-images test-integration bench bench-swarm lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/.installed: ansible/requirements.txt
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq python3-venv)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r ansible/requirements.txt
	touch $@

deploy: $(BIN)/.installed ## bring up or upgrade the classroom (CONFIG=file INVENTORY=file)
	$(DRIVER) deploy $(CONFIG_ARG) $(INVENTORY_ARG)

remove: $(BIN)/.installed ## remove the classroom, keeping students' volumes (DELETE_VOLUMES=1 deletes them)
	$(DRIVER) remove $(CONFIG_ARG) $(INVENTORY_ARG) $(if $(DELETE_VOLUMES),--delete-volumes)

backup: $(BIN)/.installed ## back up homes, the course (gradebook), the hub's database, secrets and roster, while it runs
	$(DRIVER) backup $(CONFIG_ARG) $(INVENTORY_ARG)

restore: $(BIN)/.installed ## stop the classroom, restore BACKUP=folder-of-one-backup, and deploy again
	$(DRIVER) restore --backup "$(BACKUP)" $(CONFIG_ARG) $(INVENTORY_ARG)

validate: $(BIN)/.installed ## check the operator file without changing anything (CONFIG=file)
	$(DRIVER) validate $(CONFIG_ARG)

hash-password: $(BIN)/.installed ## print a bcrypt hash to put in a roster entry's password_hash
	@$(DRIVER) hash-password

data: $(BIN)/.installed ## fill the data folder (MNIST, CIFAR-10) from FROM=folder-or-URL, checksums verified
	$(DRIVER) data --source "$(FROM)" $(CONFIG_ARG)

verify-artifact: $(BIN)/.installed ## verify artifacts the grading service signed (ARTIFACT="a.json b.json")
	$(DRIVER) verify-artifact $(ARTIFACT) $(CONFIG_ARG)

prestart: ## start every student's server now, before a class arrives (NAME=classroom)
	hub=$$(docker ps -q --filter label=com.docker.swarm.service.name=$(or $(NAME),classroom)-hub); \
	docker exec $${hub:-$(or $(NAME),classroom)-hub} classroom-prestart --group students

test: $(BIN)/.installed ## everything CI runs: unit tests, image tests, the integration suite
	tests/run.sh all $(PYTEST_ARGS)

test-unit: $(BIN)/.installed ## unit tests only (no Docker)
	tests/run.sh unit $(PYTEST_ARGS)

test-integration: $(BIN)/.installed ## deploy a test instance and drive it (no unit tests)
	tests/run.sh integration $(PYTEST_ARGS)

bench: $(BIN)/.installed ## measure spawn latency, class-start bursts, grading, memory, sizes; then on a swarm
	tests/run.sh bench

bench-swarm: $(BIN)/.installed ## only the swarm figures: a burst of 90 and 120 submissions, 3 nodes beside 1
	tests/run.sh bench-swarm

lock: $(BIN)/.installed ## regenerate every pinned requirements file
	$(BIN)/python images/lock.py

clean: ## delete the virtual environment and test artifacts
	rm -rf $(VENV) build
