# presencekit: the presence gateway, its operator and their packaging.
# This Makefile is the one entry point: `make run` starts the gateway on the
# embedded store, `make test` runs every test (installing or building what it
# needs into bin/, cached by version, so a second run is fast).

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := build

BIN := $(CURDIR)/bin
export GOBIN := $(BIN)
GO ?= go

# The Go modules of the repository: the main one, the e2e's tool and the
# image builder, which have modules of their own so that the main module does
# not depend on chromedp and cdproto (hack/e2e/e2etool/go.mod) or on
# go-containerregistry (hack/images/go.mod). go vet, golangci-lint and go fmt
# run once in each.
E2ETOOL_DIR := hack/e2e/e2etool
IMAGES_TOOL_DIR := hack/images
GO_MODULE_DIRS := . $(E2ETOOL_DIR) $(IMAGES_TOOL_DIR)

## Tool versions (each tool is cached in bin/ under a versioned name).
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Gateway

# What --version prints (internal/version): the chart's appVersion (IMAGE_TAG,
# below) and the commit, set by the linker.
VERSION_PKG := github.com/presencekit/presence-operator/internal/version
GIT_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
VERSION_LDFLAGS = -X $(VERSION_PKG).Version=$(IMAGE_TAG) -X $(VERSION_PKG).Commit=$(GIT_COMMIT)

.PHONY: build
build: ## Build bin/presence-gateway and bin/presence-operator.
	$(GO) build -trimpath -ldflags "$(VERSION_LDFLAGS)" -o $(BIN)/presence-gateway ./cmd/presence-gateway
	$(GO) build -trimpath -ldflags "$(VERSION_LDFLAGS)" -o $(BIN)/presence-operator ./cmd/presence-operator

.PHONY: run
run: ## Run the gateway on the embedded in-memory store on :8080.
	$(GO) run ./cmd/presence-gateway

.PHONY: fmt
fmt: ## Format the Go code (every module).
	for d in $(GO_MODULE_DIRS); do (cd $$d && $(GO) fmt ./...); done

.PHONY: vet
vet: ## go vet every package (every module).
	for d in $(GO_MODULE_DIRS); do (cd $$d && $(GO) vet ./...); done

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint on every module (config in .golangci.yml).
	for d in $(GO_MODULE_DIRS); do (cd $$d && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...); done

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.golangci-lint-build $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/.golangci-lint-build/golangci-lint $@
	rm -rf $(BIN)/.golangci-lint-build

##@ Tests

# Every test of the repository. Each part below installs or starts what it needs.
.PHONY: test
test: lint test-gateway test-js test-redis test-operator test-helm test-images ## Run every test (what .ci/run calls).

.PHONY: test-gateway
test-gateway: ## Gateway unit and integration tests on the embedded store, with the race detector and the fuzz seed corpus; the docs' link check.
	$(GO) test -race -count=1 $$($(GO) list ./gateway/... | grep -v /presence/redisstore) ./cmd/presence-gateway/... ./internal/... ./docs/... ./hack/loadgen/... ./hack/opbench/... ./client/... ./clients/...

##@ Client libraries

# The JavaScript client, the npm package @presencekit/client (clients/js). Its
# devDependencies (ws, typescript) come from the committed package-lock.json
# with `npm ci`, again only when package.json or the lockfile changes (the
# stamp). The tests build cmd/presence-gateway and run it on free ports; they
# run twice: with the ws package, and with the runtime's own WebSocket (the
# browser's API; Node 20 needs --experimental-websocket for it).
JS_CLIENT := clients/js
JS_STAMP := $(JS_CLIENT)/node_modules/.npm-ci.stamp
NODE ?= node
NPM ?= npm
NODE_WEBSOCKET_FLAG = $(shell $(NODE) -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null || echo --experimental-websocket)

$(JS_STAMP): $(JS_CLIENT)/package.json $(JS_CLIENT)/package-lock.json
	cd $(JS_CLIENT) && $(NPM) ci --prefer-offline --no-audit --no-fund
	touch $@

.PHONY: test-js
test-js: $(JS_STAMP) ## JavaScript client tests (Node's test runner, a real gateway), its type declarations, and npm pack installed into an empty project.
	cd $(JS_CLIENT) && $(NODE) --test test/*.test.js
	cd $(JS_CLIENT) && PRESENCEKIT_TEST_WEBSOCKET=global $(NODE) $(NODE_WEBSOCKET_FLAG) --test test/client.test.js

.PHONY: pack-js
pack-js: ## npm pack the JavaScript client into dist/ (what npm publish would upload).
	@mkdir -p dist
	cd $(JS_CLIENT) && $(NPM) pack --pack-destination $(CURDIR)/dist

.PHONY: bench
bench: ## Run the Go benchmarks.
	$(GO) test -run '^$$' -bench . -benchmem ./gateway/...

##@ Redis Cluster (presence store shared by gateway replicas)

# A six-node Redis Cluster on loopback from Debian's redis-server, nothing on
# disk (hack/redis-cluster.sh). The tests find it via PRESENCE_TEST_REDIS_NODES.
REDIS_CLUSTER_BASE_PORT ?= 7000
export REDIS_CLUSTER_BASE_PORT
REDIS_TEST_NODES = $(shell for i in 0 1 2 3 4 5; do printf '127.0.0.1:%s,' $$(( $(REDIS_CLUSTER_BASE_PORT) + i )); done | sed 's/,$$//')

.PHONY: redis-up
redis-up: ## Start the six-node Redis Cluster on 127.0.0.1:7000-7005 (REDIS_CLUSTER_BASE_PORT); idempotent.
	hack/redis-cluster.sh up

.PHONY: redis-down
redis-down: ## Stop the Redis Cluster and remove its work dir.
	hack/redis-cluster.sh down

.PHONY: redis-status
redis-status: ## Show the Redis Cluster's nodes and state.
	hack/redis-cluster.sh status

# The Redis store's tests (conformance suite, replicas, reaping, failover on
# a cluster of their own). Starts the cluster when it is not running and
# stops it afterwards only if it started it.
.PHONY: test-redis
test-redis: ## Redis Cluster store tests against a real six-node cluster (started when needed).
	started=; if ! hack/redis-cluster.sh status >/dev/null 2>&1; then hack/redis-cluster.sh up; started=1; fi; \
	trap 'if [ -n "$$started" ]; then hack/redis-cluster.sh down; fi' EXIT; \
	PRESENCE_TEST_REDIS_NODES=$(REDIS_TEST_NODES) $(GO) test -race -count=1 -timeout 20m ./gateway/presence/redisstore/...

.PHONY: loadgen
loadgen: ## Build bin/loadgen (hack/loadgen): connections, latency, RSS, Redis commands per connection.
	$(GO) build -trimpath -o $(BIN)/loadgen ./hack/loadgen

.PHONY: bench-redis
bench-redis: ## The docs/benchmarks.md run: two replicas on a cluster of their own, BENCH_CONNS idle connections each (default 1000).
	hack/loadgen/bench.sh $${BENCH_CONNS:-1000}

# The storm scenarios of docs/benchmarks.md ("Storms"): each starts its own
# Redis Cluster on 7600-7605 and its gateways; STORM_FLAGS passes loadgen
# flags, e.g. STORM_FLAGS='-clients 10000'.
.PHONY: storm-replica-loss storm-rolling-restart storm-failover storm-mass-disconnect
storm-replica-loss: ## Storm: SIGKILL one of three gateways (15,000 clients, 50 watchers of 1,000 users).
	hack/loadgen/storm.sh replica-loss $(STORM_FLAGS)
storm-rolling-restart: ## Storm: SIGTERM each of three gateways in turn, a replacement on its port.
	hack/loadgen/storm.sh rolling-restart $(STORM_FLAGS)
storm-failover: ## Storm: CLUSTER FAILOVER, then SIGKILL of a Redis master, under 10,000 clients.
	hack/loadgen/storm.sh failover $(STORM_FLAGS)
storm-mass-disconnect: ## Storm: 1,000 users (STORM_FLAGS='-clients 10000') connect and close at once under ten watchers.
	hack/loadgen/storm.sh mass-disconnect $(STORM_FLAGS)

##@ Operator

# controller-gen and the envtest binaries (kube-apiserver and etcd, built from
# source out of hack/tools by hack/build-k8s.sh) live in bin/, cached by
# version. KUBEBUILDER_ASSETS points the envtest-based tests at them.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
K8S_VERSION ?= 1.37.2
ENVTEST_ASSETS := $(BIN)/k8s/$(K8S_VERSION)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build bin/controller-gen-$(CONTROLLER_TOOLS_VERSION).

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.controller-gen-build $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(BIN)/.controller-gen-build/controller-gen $@
	rm -rf $(BIN)/.controller-gen-build

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the API's deepcopy code (api/v1alpha1/zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs (config/crd/bases) and the ClusterRole (config/rbac/role.yaml).
	$(CONTROLLER_GEN) rbac:roleName=presence-operator crd paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: envtest
envtest: $(ENVTEST_ASSETS)/kube-apiserver $(ENVTEST_ASSETS)/etcd ## Build kube-apiserver and etcd into bin/k8s/$(K8S_VERSION) (cold: ~7 min on 2 cores).

# Any binary hack/build-k8s.sh knows: kube-apiserver, etcd, kubectl,
# kube-controller-manager, kube-scheduler.
$(ENVTEST_ASSETS)/%:
	K8S_VERSION=$(K8S_VERSION) hack/build-k8s.sh $*

.PHONY: test-operator
test-operator: envtest $(CONTROLLER_GEN) redis-up ## Operator tests on envtest (a real kube-apiserver + etcd) and the real Redis Cluster.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) CONTROLLER_GEN=$(CONTROLLER_GEN) PRESENCE_TEST_REDIS_NODES=$(REDIS_TEST_NODES) \
		$(GO) test -race -count=1 ./api/... ./controllers/... ./cmd/presence-operator/...

.PHONY: run-operator
run-operator: ## Run the operator against the current kubeconfig (install the CRDs first: kubectl apply --server-side -k config/crd).
	$(GO) run ./cmd/presence-operator --gateway-image=$(GATEWAY_IMG) --health-probe-bind-address=:8081 --metrics-bind-address=:8082

##@ Helm chart and images

# The chart's CRDs and ClusterRole rules are copies of what controller-gen
# generates into config/ (make helm-crds); the chart tests fail when a copy is
# stale. helm itself is built from the Go module proxy, pinned.
HELM_VERSION ?= v4.3.1
HELM := $(BIN)/helm-$(HELM_VERSION)
CHART_DIR := charts/presence-operator
# Images are tagged with the chart's appVersion, the tag the chart deploys.
IMAGE_REGISTRY ?= ghcr.io/presencekit
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' $(CHART_DIR)/Chart.yaml)
OPERATOR_IMG ?= $(IMAGE_REGISTRY)/presence-operator:$(IMAGE_TAG)
GATEWAY_IMG ?= $(IMAGE_REGISTRY)/presence-gateway:$(IMAGE_TAG)

.PHONY: helm
helm: $(HELM) ## Build the pinned helm (HELM_VERSION) into bin/ from the Go module proxy.

$(HELM):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.helm-build $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/.helm-build/helm $@
	rm -rf $(BIN)/.helm-build

# promtool checks and unit-tests the chart's alert rules (charts/alerts_test.go).
# Prometheus' module tags its v3 releases v0.3xx; only cmd/promtool is built,
# without the service-discovery plugins (remove_all_sd: promtool needs none to
# check and test rules, and they are most of its build).
PROMTOOL_VERSION ?= v0.316.0
PROMTOOL := $(BIN)/promtool-$(PROMTOOL_VERSION)

.PHONY: promtool
promtool: $(PROMTOOL) ## Build the pinned promtool (PROMTOOL_VERSION) into bin/ from the Go module proxy.

$(PROMTOOL):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.promtool-build $(GO) install -tags remove_all_sd github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	mv $(BIN)/.promtool-build/promtool $@
	rm -rf $(BIN)/.promtool-build

.PHONY: test-helm
test-helm: $(HELM) $(PROMTOOL) envtest ## Chart tests: lint, template with every toggle, dry-run and helm install/upgrade/uninstall on envtest, alert rules (promtool), chart copies of config/ in sync, dashboard.
	HELM=$(HELM) PROMTOOL=$(PROMTOOL) KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO) test -count=1 -timeout 10m ./charts/...

.PHONY: helm-crds
helm-crds: manifests ## Regenerate the CRDs and ClusterRole (make manifests) and copy them into the chart.
	rm -f $(CHART_DIR)/files/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART_DIR)/files/crds/
	cp config/rbac/role.yaml $(CHART_DIR)/files/rbac/role.yaml

# The images are built without a container engine or a base image pulled
# from a registry (hack/images, go-containerregistry): each binary is
# cross-compiled static for IMAGE_PLATFORMS and put on an empty image with a
# CA bundle (the host's, Debian's ca-certificates) and a nonroot user; both
# platforms go into one OCI image index, an OCI layout per image in
# IMAGES_DIR (bin/images/presence-gateway, bin/images/presence-operator).
# Set IMAGE_REGISTRY (make images IMAGE_REGISTRY=ghcr.io/you) to also push
# them as $(IMAGE_REGISTRY)/<name>:$(IMAGE_TAG), with the credentials of
# docker login / crane auth login; or push a layout later with
# crane push bin/images/<name> <ref>.
IMAGES_DIR ?= $(BIN)/images
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
IMAGES_BUILD = cd $(IMAGES_TOOL_DIR) && $(GO) run . -root $(CURDIR) -out $(IMAGES_DIR) -platforms $(IMAGE_PLATFORMS)
# Only a registry given on the command line or in the environment is pushed
# to, not the default above.
IMAGE_PUSH = $(if $(filter command% environment%,$(origin IMAGE_REGISTRY)),$(IMAGE_REGISTRY))

.PHONY: images
images: ## Build both images (linux/amd64, linux/arm64) as OCI layouts in bin/images/<name>, without Docker (cold: ~10 min on 2 cores); IMAGE_REGISTRY=... also pushes them.
	$(IMAGES_BUILD) -version $(IMAGE_TAG) $(if $(IMAGE_PUSH),-push $(IMAGE_PUSH))

# Builds the images of the chart's appVersion (never pushes) and checks them:
# platforms, entrypoint, user, labels, no shell, the binary's --version, and
# that the chart, the Makefile and the binaries agree on the version.
.PHONY: test-images
test-images: ## Build the images (as make images, no push; cold: ~10 min on 2 cores) and test them with go-containerregistry.
	$(IMAGES_BUILD)
	cd $(IMAGES_TOOL_DIR) && IMAGES_DIR=$(IMAGES_DIR) $(GO) test -count=1 ./...

.PHONY: image-refs
image-refs: ## Print the images the chart deploys by default (OPERATOR_IMG, GATEWAY_IMG).
	@echo $(OPERATOR_IMG)
	@echo $(GATEWAY_IMG)

##@ End to end: local control plane, make e2e, make demo

# hack/local-cluster.sh runs etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (one fake node, Stages in hack/kwok/) on loopback;
# hack/e2e/run.sh drives the e2e and the demo on it. The Kubernetes binaries
# come from hack/build-k8s.sh (bin/k8s/<version>/), kwok from the Go module
# proxy (bin/kwok-<version>).
K8S_VERSION ?= 1.37.2
K8S_BIN_DIR := $(BIN)/k8s/$(K8S_VERSION)
KWOK_VERSION ?= v0.8.0
KWOK := $(BIN)/kwok-$(KWOK_VERSION)
E2ETOOL := $(BIN)/e2etool
LOCAL_CLUSTER_K8S := etcd kube-apiserver kube-controller-manager kube-scheduler kubectl

.PHONY: local-cluster-tools
local-cluster-tools: $(KWOK) ## Build the local control plane's binaries into bin/ (cached; cold: ~10 minutes).
	K8S_VERSION=$(K8S_VERSION) hack/build-k8s.sh $(LOCAL_CLUSTER_K8S)

$(KWOK):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.kwok-build $(GO) install sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
	mv $(BIN)/.kwok-build/kwok $@
	rm -rf $(BIN)/.kwok-build

.PHONY: local-cluster-up
local-cluster-up: local-cluster-tools ## Start the local control plane (KUBECONFIG=/tmp/presencekit-cluster/kubeconfig).
	hack/local-cluster.sh up

.PHONY: local-cluster-down
local-cluster-down: ## Stop the local control plane.
	hack/local-cluster.sh down

.PHONY: e2e-build
e2e-build: local-cluster-tools build ## Build everything the e2e runs: control plane, gateway, operator, hack/e2e/e2etool.
	cd $(E2ETOOL_DIR) && $(GO) test -count=1 ./... && $(GO) build -trimpath -o $(E2ETOOL) .

.PHONY: e2e
e2e: e2e-build ## End-to-end test on a local control plane, Redis Cluster, operator, two gateways and headless Chromium.
	hack/e2e/run.sh e2e

.PHONY: demo
demo: e2e-build ## The e2e environment, left running, with the /demo page on two gateways (stop: make demo-down).
	hack/e2e/run.sh demo

.PHONY: demo-down
demo-down: ## Stop everything make demo started.
	hack/e2e/run.sh down

# The operator benchmark of docs/benchmarks.md ("Operator"): a control plane,
# kwok nodes, a Redis Cluster and the operator of its own; OPBENCH_GATEWAYS,
# OPBENCH_REPLICAS, OPBENCH_OPERATOR_FLAGS and the ports are described in
# hack/opbench/run.sh; OPBENCH_FLAGS passes opbench flags, e.g. '-idle 5m'.
.PHONY: bench-operator
bench-operator: local-cluster-tools build ## Operator benchmark: 500 PresenceGateways on one RedisCluster (kwok pods): time to Ready, RSS/CPU, idle writes, a flap.
	$(GO) build -trimpath -o $(BIN)/opbench ./hack/opbench
	hack/opbench/run.sh $(OPBENCH_FLAGS)
