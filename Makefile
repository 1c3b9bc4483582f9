# Day-to-day commands. `make check` is what CI runs (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KIND_CLUSTER := istio-dev
STATE_DIR := $(CURDIR)/.pulumi-state

.PHONY: venv check lint typecheck test bench dev-up dev-down toolchain cluster-up cluster-down e2e-local

venv: $(BIN)/python
$(BIN)/python: requirements.txt requirements-dev.txt requirements-tools.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-tools.txt
	# The `meshplan` console script (pyproject.toml), for use from any directory.
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# The README's test command: linters, type checks and every offline test.
check: lint typecheck test

lint:
	ruff check .
	ruff format --check .
	actionlint

typecheck:
	pyright

test:
	pytest

bench:
	python bench/preview.py

# Adds an Istio version's addon sums to addons.lock (review them in the pull request): VERSION=1.31.1.
# The same as `python -m components.addon_lock add 1.31.1`.
.PHONY: addon-lock
addon-lock:
	$(if $(VERSION),,$(error set VERSION, e.g. make addon-lock VERSION=1.31.1))
	$(BIN)/python -m components.addon_lock add $(VERSION)

# One command brings up the dev stack on a local kind cluster with a local file state backend.
dev-up: venv
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --config hack/kind-dev.yaml
	mkdir -p $(STATE_DIR)
	PULUMI_BACKEND_URL=file://$(STATE_DIR) PULUMI_CONFIG_PASSPHRASE=$${PULUMI_CONFIG_PASSPHRASE-} \
		sh -c 'pulumi stack select --create dev && pulumi up --yes --stack dev'

dev-down:
	PULUMI_BACKEND_URL=file://$(STATE_DIR) PULUMI_CONFIG_PASSPHRASE=$${PULUMI_CONFIG_PASSPHRASE-} \
		pulumi destroy --yes --stack dev
	kind delete cluster --name $(KIND_CLUSTER)

# Mutation testing, not run in CI (minutes to hours): hack/mutate.py over every module it lists, or
# one with `make mutate MODULE=components/revision_tags.py`; prints survivors and a table per module.
.PHONY: mutate
mutate:
	nice -n 19 python hack/mutate.py $(MODULE)

# Lists the targets, each with the first line of the comment above it (or what it runs or needs).
.PHONY: help
help:
	@awk '/^# / { if (!doc) doc = substr($$0, 3); next } \
		/^\.PHONY/ { next } \
		pending != "" { line = $$0; sub(/^\t@?/, "", line); sub(/ *\\$$/, "", line); \
			printf "  %-14s %s\n", pending, (/^\t/ ? "runs: " substr(line, 1, 80) : needs); pending = "" } \
		/^[A-Za-z][A-Za-z0-9_-]*:/ && !/:=/ { name = $$0; sub(/:.*/, "", name); \
			needs = $$0; sub(/^[^:]*: */, "", needs); needs = (needs == "" ? "" : "needs: " needs); \
			if (doc) printf "  %-14s %s\n", name, doc; else pending = name } \
		{ doc = "" }' $(firstword $(MAKEFILE_LIST))

# The real engine on a local cluster without containers (README, "The real engine"): builds or
# reuses the Pulumi CLI, kubernetes provider and control plane from Go modules; the last line is the
# directory holding pulumi, kubectl, helm and kwokctl.
toolchain: venv
	@PYTHON=$(CURDIR)/$(BIN)/python bash hack/toolchain.sh

# Starts the local cluster and the loopback chart repository (../shared/upstream/charts); the last
# lines are KUBECONFIG=..., CONTEXT=... and CHARTS=http://127.0.0.1:...
cluster-up: venv
	@PYTHON=$(CURDIR)/$(BIN)/python bash hack/cluster.sh up

# Stops the local cluster and the chart repository, and removes what they made.
cluster-down:
	@PYTHON=$(CURDIR)/$(BIN)/python bash hack/cluster.sh down

# The whole real-engine scenario on a fresh local cluster; ends with `N passed, N failed`.
e2e-local: venv
	@PYTHON=$(CURDIR)/$(BIN)/python bash hack/e2e-local.sh
