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
ROWS ?= 1000000

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

# Every Python dependency comes from uv.lock (versions and hashes), installed by uv, itself
# pinned here and installed once into .cache/uv. uv never downloads a Python: PYTHON's is used.
UV_VERSION ?= 0.13.9
UV := .cache/uv/bin/uv
export UV_PYTHON_DOWNLOADS = never

$(UV):
	$(PYTHON) -m venv .cache/uv
	.cache/uv/bin/pip install -q --disable-pip-version-check 'uv==$(UV_VERSION)'

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --all-extras --compile-bytecode \
	  --python $(PYTHON) --quiet
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv from uv.lock: molstream (editable) and its test tools.

.PHONY: lock
lock: $(UV) ## Refresh uv.lock to the newest versions pyproject.toml allows (then: make test).
	$(UV) lock --upgrade --python $(PYTHON)

.PHONY: provision
provision: ## Install/build what tests need: Redis, PostgreSQL, Kafka jars, etcd, kube-apiserver, helm (root).
	bash tools/provision/services.sh
	bash tools/provision/kube.sh

##@ Development

.PHONY: lint
lint: venv ## ruff over the Python sources and tests.
	$(VENV)/bin/ruff check services operator tools tests bench

.PHONY: test
test: lint ## Lint, then every test against real services (started on 127.0.0.1 by the test environment).
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: local
local: venv ## Run the whole pipeline locally (Kafka, Redis, FTP on 127.0.0.1) on LOCAL_ROWS generated rows, or on the file at URL=….
	@bash tools/provision/services.sh >/dev/null
	$(PY) -m molstream_dev.local --rows $(LOCAL_ROWS) $(if $(URL),--url '$(URL)')

.PHONY: bench
bench: venv ## Benchmark: end to end vs the seed's design and a bulk load, memory at ROWS and 2×ROWS (table + bench/results/).
	@bash tools/provision/services.sh >/dev/null
	$(PY) -m bench --rows $(ROWS) $(if $(SHAPE),--shape $(SHAPE))

.PHONY: bench-full
bench-full: venv ## Benchmark at full ChEMBL scale (24M rows; no 2N run): both databases, the three row orders, peak RSS (~45 min).
	@bash tools/provision/services.sh >/dev/null
	$(PY) -m bench --rows 24000000 --full $(if $(SHAPE),--shape $(SHAPE))

##@ Kubernetes (kind)

# Tools: the ones tools/provision/kube.sh builds into .cache/bin win over PATH.
DOCKER ?= docker
KIND ?= $(if $(wildcard .cache/bin/kind),.cache/bin/kind,kind)
# The node image kind creates the cluster from (kind's default when empty); `make e2e` builds
# one offline (tools/provision/e2e) and passes it here.
KIND_NODE_IMAGE ?=
# More for the e2e suite (empty for users): docker build arguments, images to load into kind
# beside molstream's, a values file on top of k8s/kind-values.yaml.
DOCKER_BUILD_ARGS ?=
EXTRA_IMAGES ?=
EXTRA_VALUES ?=
# More arguments of `helm upgrade --install` (the e2e suite's second release: --set …).
EXTRA_HELM_ARGS ?=
SKAFFOLD ?= $(if $(wildcard .cache/bin/skaffold),.cache/bin/skaffold,skaffold)
KUBECTL ?= $(if $(wildcard .cache/bin/kubectl),.cache/bin/kubectl,kubectl)
HELM ?= $(if $(wildcard .cache/bin/helm),.cache/bin/helm,helm)
IMAGE ?= $(IMAGE_REPO):$(IMAGE_TAG)
KUBE_CONTEXT ?= kind-$(CLUSTER_NAME)
CHART ?= charts/molstream
SAMPLE_IR ?= k8s/ingestrequest.yaml
SAMPLE_NAME ?= ingestrequest-sample
RUN_TIMEOUT_S ?= 1800
KIND_VERSION ?= v0.33.0
E2E_NODE_IMAGE ?= molstream-e2e/node:v1.32.13
K := $(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE)

.PHONY: check-tools
check-tools: ## Check for docker (with a running engine), kind, kubectl and helm; say how to get what is missing.
	@missing=0; \
	command -v $(DOCKER) >/dev/null || { echo "missing docker: install Docker Engine (https://docs.docker.com/engine/install/)"; missing=1; }; \
	command -v $(DOCKER) >/dev/null && ! $(DOCKER) info >/dev/null 2>&1 && { echo "docker is installed but no engine answers: start it (docker info fails)"; missing=1; }; \
	command -v $(KIND) >/dev/null || { echo "missing kind: go install sigs.k8s.io/kind@latest (or https://kind.sigs.k8s.io/docs/user/quick-start/)"; missing=1; }; \
	command -v $(KUBECTL) >/dev/null || { echo "missing kubectl: tools/provision/kube.sh builds it into .cache/bin"; missing=1; }; \
	command -v $(HELM) >/dev/null || { echo "missing helm: tools/provision/kube.sh builds it into .cache/bin"; missing=1; }; \
	if [ $$missing = 0 ]; then echo "docker, kind, kubectl and helm are ready"; fi; \
	exit $$missing

.PHONY: cluster
cluster: check-tools ## Create the kind cluster $(CLUSTER_NAME) unless it exists (Kafka UI on localhost:$(KAFKA_UI_PORT)).
	@if $(KIND) get clusters 2>/dev/null | grep -qx '$(CLUSTER_NAME)'; then \
	  echo "kind cluster $(CLUSTER_NAME) already exists"; \
	else \
	  mkdir -p .cache; \
	  sed 's/$${KAFKA_UI_PORT}/$(KAFKA_UI_PORT)/' k8s/kind-config.yaml > .cache/kind-config.yaml; \
	  $(KIND) create cluster --name $(CLUSTER_NAME) --config .cache/kind-config.yaml --wait 180s \
	    $(if $(KIND_NODE_IMAGE),--image $(KIND_NODE_IMAGE)); \
	fi

.PHONY: image
image: check-tools ## Build the molstream image ($(IMAGE)) and load it into the kind cluster.
	$(DOCKER) build --target runtime --tag $(IMAGE) $(DOCKER_BUILD_ARGS) .
	$(KIND) load docker-image $(IMAGE) $(EXTRA_IMAGES) --name $(CLUSTER_NAME)

.PHONY: deploy
deploy: ## helm upgrade --install the chart into the kind cluster (a namespace enforcing Pod Security "restricted") and wait for it.
	@# The namespace enforces the restricted Pod Security Standard: every Pod of the release
	@# (fetcher Jobs and helm test included) must pass it, or the API server refuses it.
	$(KUBECTL) --context $(KUBE_CONTEXT) create namespace $(NAMESPACE) --dry-run=client -o yaml | \
	  $(KUBECTL) --context $(KUBE_CONTEXT) apply -f - >/dev/null
	$(KUBECTL) --context $(KUBE_CONTEXT) label namespace $(NAMESPACE) --overwrite \
	  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null
	@# A cluster where chart 0.1.0 ran has the CRD from its crds/, owned by no release: helm
	@# adopts it only with --take-ownership (helm 3.17 or later), and then upgrades it.
	@owner=$$($(KUBECTL) --context $(KUBE_CONTEXT) get crd ingestrequests.molstream.io \
	  -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}' 2>/dev/null) && \
	  [ -z "$$owner" ] && take=--take-ownership; \
	set -x; $(HELM) upgrade --install $(RELEASE) $(CHART) --kube-context $(KUBE_CONTEXT) \
	  --namespace $(NAMESPACE) --values k8s/kind-values.yaml \
	  $(if $(EXTRA_VALUES),--values $(EXTRA_VALUES)) \
	  --set image.repository=$(IMAGE_REPO) --set image.tag=$(IMAGE_TAG) \
	  --set ftp.sampleRows=$(LOCAL_ROWS) $(EXTRA_HELM_ARGS) $$take --wait --timeout 10m
	$(HELM) test $(RELEASE) --kube-context $(KUBE_CONTEXT) --namespace $(NAMESPACE) --logs

.PHONY: run
run: cluster image deploy ## Everything on kind: cluster, image, chart, the sample IngestRequest followed to its report.
	@# Already there from an earlier run: ask the operator for a new run of it, and follow that
	@# run, not the earlier one's result (still in the status until the operator acts). Forced:
	@# the demo server's file is the one loaded before, which would end the run as Unchanged.
	@before=0; \
	if $(K) get ir $(SAMPLE_NAME) >/dev/null 2>&1; then \
	  before=$$($(K) get ir $(SAMPLE_NAME) -o jsonpath='{.status.run}'); \
	  $(K) annotate ir $(SAMPLE_NAME) molstream.io/rerun="force-$$(date +%s)" --overwrite >/dev/null; fi; \
	echo "$(K) apply -f $(SAMPLE_IR)"; $(K) apply -f $(SAMPLE_IR) || exit 1; \
	deadline=$$((SECONDS + $(RUN_TIMEOUT_S))); \
	while :; do \
	  phase=$$($(K) get ir $(SAMPLE_NAME) -o jsonpath='{.status.phase}'); \
	  [ "$$($(K) get ir $(SAMPLE_NAME) -o jsonpath='{.status.run}')" -gt "$${before:-0}" ] 2>/dev/null || phase=; \
	  echo "$$(date +%T) $${phase:-Pending} $$($(K) get ir $(SAMPLE_NAME) -o jsonpath='{.status.progress}')"; \
	  case "$$phase" in \
	    Succeeded) break ;; \
	    Failed) $(K) get ir $(SAMPLE_NAME) -o jsonpath='{.status.message}{"\n"}'; exit 1 ;; \
	  esac; \
	  if [ $$SECONDS -gt $$deadline ]; then echo "still not done after $(RUN_TIMEOUT_S) s"; exit 1; fi; \
	  sleep 5; \
	done
	@echo "Rows written per table:"
	@$(K) get ir $(SAMPLE_NAME) -o go-template='{{range $$table, $$rows := .status.report}}{{printf "  %-15s %v\n" $$table $$rows}}{{end}}'
	@echo "Kafka UI: http://localhost:$(KAFKA_UI_PORT)"

.PHONY: e2e-node
e2e-node: ## Test machines: Docker, kind, the offline kind node image and the stand-in images (root).
	bash tools/provision/kube.sh
	bash tools/provision/docker.sh
	GOBIN=$(CURDIR)/.cache/bin GOMODCACHE=$(CURDIR)/.cache/go/mod GOCACHE=$(CURDIR)/.cache/go/build \
	  GOFLAGS=-modcacherw GOTOOLCHAIN=local \
	  go install sigs.k8s.io/kind@$(KIND_VERSION)
	bash tools/provision/skaffold.sh
	KIND_VERSION=$(KIND_VERSION) bash tools/provision/e2e/node-image.sh $(E2E_NODE_IMAGE)
	bash tools/provision/e2e/python-base.sh $(E2E_PYTHON_IMAGE)
	bash tools/provision/e2e/standins.sh

# What the e2e suite passes to the same make targets users run (tests/e2e).
export E2E_PYTHON_IMAGE ?= molstream-e2e/python:3.11-bookworm
export E2E_MAKE_ARGS = KIND_NODE_IMAGE=$(E2E_NODE_IMAGE) EXTRA_VALUES=k8s/e2e-values.yaml \
  EXTRA_IMAGES="molstream-e2e/kafka:3.9.1 molstream-e2e/redis:7 molstream-e2e/kafka-ui:standin molstream-e2e/postgres:15" \
  DOCKER_BUILD_ARGS="--network host --build-arg PYTHON_IMAGE=$(E2E_PYTHON_IMAGE)"

.PHONY: e2e
e2e: venv e2e-node ## End-to-end: make run on a real kind cluster from the offline node image (Docker, root).
	MOLSTREAM_E2E=1 $(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

.PHONY: dev
dev: cluster ## skaffold dev on the kind cluster (make run's release): rebuild/sync on change, worker and operator restart.
	@command -v $(SKAFFOLD) >/dev/null || { echo "missing skaffold: https://skaffold.dev/docs/install/ (v2.16 or later; tools/provision/skaffold.sh builds it into .cache/bin)"; exit 1; }
	@# --cleanup=false: the release is make run's too (its database included); leave it running.
	@# skaffold calls helm, kubectl and kind: the ones in .cache/bin first, as here.
	PATH="$(CURDIR)/.cache/bin:$$PATH" $(SKAFFOLD) dev --kube-context $(KUBE_CONTEXT) \
	  --port-forward=off --cleanup=false

.PHONY: clean
clean: ## Uninstall the release and delete the kind cluster (make run's counterpart).
	-$(HELM) uninstall $(RELEASE) --kube-context $(KUBE_CONTEXT) --namespace $(NAMESPACE)
	-$(KIND) delete cluster --name $(CLUSTER_NAME)
