# deploy/ and docs: the tools their tests drive, the offline Kubernetes
# manifest validator, and regeneration of the docs built from the config
# key table.
.PHONY: k8s-validator deploy-docs

# man --warnings (man-db, groff), systemd-analyze verify (systemd),
# the notify-socket listener and free ports in the scenarios (python3).
TEST_DEB_PKGS += man-db groff-base systemd python3
# promtool (tests/scenario/dashboards.sh checks the alerting rules and the
# Grafana dashboard's queries with it).
TEST_DEB_PKGS += prometheus

# kubernetes-models carries the Kubernetes OpenAPI schemas compiled to
# validators and as TypeScript interfaces (TypeScript's excess-property
# check catches misspelt fields); the Prometheus Operator package does the
# same for ServiceMonitor. Installed from npm into the build directory,
# never vendored.
K8S_VALIDATOR_DIR := $(BUILD)/k8s-validate
K8S_VALIDATOR_PKGS := kubernetes-models@5.1.0 @kubernetes-models/prometheus-operator@6.0.0 yaml@2.9.1 \
	typescript@5.9.3
K8S_VALIDATOR_STAMP := $(K8S_VALIDATOR_DIR)/node_modules/kubernetes-models/package.json

k8s-validator: $(K8S_VALIDATOR_STAMP)

$(K8S_VALIDATOR_STAMP): mk/deploy.mk
	@command -v npm >/dev/null 2>&1 || sh tools/deps.sh nodejs npm
	@mkdir -p $(K8S_VALIDATOR_DIR)
	npm install --prefix $(K8S_VALIDATOR_DIR) --no-audit --no-fund --no-save --silent \
		$(K8S_VALIDATOR_PKGS)
	@touch $@

# tests/scenario/deploy.sh validates the manifests with it (not a
# test-deps prerequisite: `make demo` needs no npm).
test scenario: k8s-validator

# The KEYS section of man/pushpool.conf.5 and the README's configuration
# reference, from `pushpool check --print-defaults`.
deploy-docs: $(BUILD)/pushpool
	sh man/docs-sync.sh $(BUILD)/pushpool
