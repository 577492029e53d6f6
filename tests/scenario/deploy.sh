#!/bin/sh
# deploy/ artefacts:
#  1. the systemd unit (as `make install` writes it, with its drop-ins)
#     passes `systemd-analyze verify` with no message at all;
#  2. every Kubernetes manifest validates against the Kubernetes OpenAPI
#     schemas and, for unknown fields, the models' TypeScript interfaces
#     (kubernetes-models, installed by `make k8s-validator`); broken copies
#     are rejected; the ConfigMap's pushpool.conf passes `pushpool check`;
#  3. the Dockerfile's build-stage RUN steps are the README's build steps;
#  4. the cron example runs `pushpool once`.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
BUILD_DIR=$(dirname "$PUSHPOOL")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT INT TERM
fail() {
	echo "FAIL: $*"
	exit 1
}

# ---- 1. systemd-analyze verify ----
# Installed under a private PREFIX so ExecStart names a real binary; unit
# search path = our directory first, then the host's (for the targets the
# unit refers to). Works without systemd as PID 1.
make -s install PREFIX="$W/prefix" BUILD="$BUILD_DIR" >"$W/install.log" 2>&1 ||
	{ cat "$W/install.log"; fail "make install PREFIX=$W/prefix"; }
UNIT=$W/prefix/lib/systemd/system/pushpool.service
grep -q "^ExecStart=$W/prefix/bin/pushpool serve" "$UNIT" || fail "ExecStart does not follow PREFIX"
mkdir -p "$W/units/pushpool.service.d"
cp "$UNIT" "$W/units/"
cp "$ROOT"/deploy/systemd/pushpool.service.d/*.conf "$W/units/pushpool.service.d/"
verify() {
	SYSTEMD_UNIT_PATH="$W/units:" systemd-analyze verify --man=no "$W/units/pushpool.service" \
		>"$W/verify.out" 2>&1
}
verify || { cat "$W/verify.out"; fail "systemd-analyze verify failed"; }
[ ! -s "$W/verify.out" ] || { cat "$W/verify.out"; fail "systemd-analyze verify printed warnings"; }
for key in Type=notify ExecReload= DynamicUser=yes ProtectSystem=strict StateDirectory=pushpool \
	NoNewPrivileges=yes CapabilityBoundingSet= WatchdogSec=; do
	grep -q "^$key" "$UNIT" || fail "unit lacks $key"
done
grep -q '^LoadCredential=' "$W/units/pushpool.service.d/credentials.conf" || fail "no LoadCredential= example"
# The check must be able to fail: a misspelt key is reported.
echo 'ProtectSytem=strict' >>"$W/units/pushpool.service.d/credentials.conf"
verify || true
grep -q "ProtectSytem" "$W/verify.out" || fail "systemd-analyze verify missed a bad key"
make -s uninstall PREFIX="$W/prefix" >/dev/null
echo "systemd: unit and drop-ins verified"

# ---- 2. Kubernetes manifests ----
NODE_MODULES=$BUILD_DIR/k8s-validate/node_modules
[ -f "$NODE_MODULES/kubernetes-models/package.json" ] ||
	fail "no validator in $NODE_MODULES: run make k8s-validator (make test does)"
V="$ROOT/deploy/kubernetes/validate.mjs"
node "$V" "$NODE_MODULES" "$ROOT"/deploy/kubernetes/*.yaml >"$W/k8s.out" 2>&1 ||
	{ cat "$W/k8s.out"; fail "Kubernetes manifests invalid"; }
for kind in ConfigMap Deployment Secret Service ServiceMonitor; do
	grep -q ": $kind/.*: valid" "$W/k8s.out" || fail "no valid $kind"
done
D="$ROOT/deploy/kubernetes/deployment.yaml"
grep -q '^  replicas: 2$' "$D" || fail "Deployment is not 2 replicas"
[ "$(grep -c 'path: /healthz' "$D")" -ge 2 ] || fail "probes do not use /healthz"
grep -q 'secretName: pushpool-credentials' "$D" || fail "credentials not mounted from the Secret"
grep -q 'name: pushpool-config' "$D" || fail "config not mounted from the ConfigMap"
# Schema errors are caught: a string replica count, a non-numeric port.
sed 's/^  replicas: 2$/  replicas: "2"/' "$D" >"$W/bad1.yaml"
sed 's/containerPort: 9464/containerPort: high/' "$D" >"$W/bad2.yaml"
for bad in "$W/bad1.yaml" "$W/bad2.yaml"; do
	if node "$V" "$NODE_MODULES" "$bad" >"$W/bad.out" 2>&1; then
		fail "validator accepted $(basename "$bad")"
	fi
	grep -q 'must be integer' "$W/bad.out" || { cat "$W/bad.out"; fail "unexpected validator message"; }
done
# Unknown (misspelt) fields are caught too, as kubectl --validate=strict would.
sed 's/httpGet:/httpGett:/' "$D" >"$W/bad3.yaml"
if node "$V" "$NODE_MODULES" "$W/bad3.yaml" >"$W/bad.out" 2>&1; then
	fail "validator accepted a misspelt field"
fi
grep -q "'\"httpGett\"' does not exist" "$W/bad.out" || { cat "$W/bad.out"; fail "unexpected validator message"; }
# The ConfigMap's configuration, with the mounted files stood in for.
node "$V" "$NODE_MODULES" --config "$ROOT/deploy/kubernetes/configmap.yaml" >"$W/k8s.conf"
printf 'pnu_test' >"$W/prefect-api-key"
openssl genrsa -out "$W/key.pem" 2048 2>/dev/null
pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$W/key.pem")
printf '{"type": "service_account", "project_id": "p", "private_key_id": "k", "private_key": "%s", "client_email": "a@p.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"}' \
	"$pem" >"$W/sa.json"
chmod 600 "$W/prefect-api-key" "$W/sa.json"
PUSHPOOL_SOURCE_PREFECT_API_KEY_FILE=$W/prefect-api-key PUSHPOOL_CREDENTIALS_GCP_FILE=$W/sa.json \
	PUSHPOOL_DISPATCHER_STATE_DIR=$W "$PUSHPOOL" check -c "$W/k8s.conf" >"$W/check.out" 2>&1 ||
	{ cat "$W/check.out"; fail "the ConfigMap's pushpool.conf does not pass pushpool check"; }
grep -q '^metrics_listen = 0.0.0.0:9464' "$W/k8s.conf" || fail "metrics not reachable by probes"
echo "kubernetes: $(grep -c ': valid' "$W/k8s.out") objects valid, config OK"

# ---- 3. Dockerfile build steps == README build steps ----
# Build stage RUN instructions, continuation lines joined, split at &&.
awk '
	/^FROM / { stage++ }
	stage == 1 && /^RUN / { run = 1; line = "" }
	run { l = $0; sub(/^RUN /, "", l); sub(/^[ \t]+/, "", l); cont = sub(/[ \t]*\\$/, "", l)
	      line = line (line == "" ? "" : " ") l; if (!cont) { print line; run = 0 } }
' "$ROOT/deploy/container/Dockerfile" | sed 's/ && /\n/g' >"$W/docker.steps"
sed -n '/^<!-- BEGIN BUILD STEPS -->$/,/^<!-- END BUILD STEPS -->$/p' "$ROOT/README.md" |
	awk '/^```/ { inblock = !inblock; next } inblock && !/^#/ && NF {
		l = $0; cont = sub(/[ \t]*\\$/, "", l); sub(/^[ \t]+/, "", l)
		line = line (line == "" ? "" : " ") l; if (!cont) { print line; line = "" } }' \
	>"$W/readme.steps"
[ -s "$W/readme.steps" ] || fail "README has no BUILD STEPS block"
diff -u "$W/readme.steps" "$W/docker.steps" || fail "Dockerfile build steps differ from the README's"
grep -q '^USER 10001' "$ROOT/deploy/container/Dockerfile" || fail "image does not run as non-root"
grep -q '^FROM debian:12-slim$' "$ROOT/deploy/container/Dockerfile" || fail "runtime stage not debian:12-slim"
# The runtime stage installs no -dev package.
awk '/^FROM / { stage++ } stage == 2' "$ROOT/deploy/container/Dockerfile" | grep -q -- '-dev' &&
	fail "runtime stage installs -dev packages"
# The build stage copies every directory the build reads C sources from.
for d in $(cd "$ROOT" && git ls-files '*.c' | grep -v '^tests/' | cut -d/ -f1 | sort -u); do
	grep -q "^COPY $d $d\$" "$ROOT/deploy/container/Dockerfile" ||
		fail "the Dockerfile's build stage does not copy $d/"
done
# The runtime stage installs the package of every library the binary links
# directly (the allocator included; their own dependencies come with them).
# libc6 is in the base image; a sanitizer's runtime (`make check`) is the
# test build's, not the image's.
awk '/^FROM / { stage++ } stage == 2' "$ROOT/deploy/container/Dockerfile" >"$W/runtime"
ldd "$PUSHPOOL" | awk '$2 == "=>" { print $1, $3 }' >"$W/ldd"
for lib in $(objdump -p "$PUSHPOOL" | awk '$1 == "NEEDED" { print $2 }'); do
	path=$(awk -v l="$lib" '$1 == l { print $2 }' "$W/ldd")
	pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "/usr$path" 2>/dev/null || true)
	pkg=${pkg%%:*}
	[ -n "$pkg" ] || fail "no Debian package owns $lib ($path)"
	case $pkg in libc6 | libasan* | libubsan*) continue ;; esac
	grep -Eq "(^|[[:space:]])$pkg([[:space:]]|$)" "$W/runtime" ||
		fail "the runtime stage does not install $pkg, which has $lib"
done
echo "container: $(wc -l <"$W/docker.steps") build steps match the README; the runtime stage has every library the binary links"

# ---- 4. cron example ----
CRON=$ROOT/deploy/cron/pushpool.cron
grep -Eq '^[^#].*pushpool once' "$CRON" || fail "cron example does not run pushpool once"
grep -Eq '^[^#]*flock' "$CRON" && fail "cron example should not need flock"
echo "cron: example OK"
