# molstream — `make help` lists the targets.
SHELL = bash -o pipefail
.SHELLFLAGS = -ec
.DEFAULT_GOAL := help

include .env
export

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with molstream and its test tools.

##@ Development

.PHONY: test
test: venv ## Run every test against real services (started on 127.0.0.1 by the test environment).
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: local
local: venv ## Run the whole pipeline locally (Kafka, Redis, FTP on 127.0.0.1) on LOCAL_ROWS generated rows.
	@bash tools/provision/services.sh >/dev/null
	$(PY) -m molstream_dev.local --rows $(LOCAL_ROWS)
