#!/bin/sh
# The main job on the embedded default: start `pushpool mock`, schedule runs
# across all four pool types in the embedded SQLite store, dispatch them with
# `pushpool once --wait`, list them, stop the mock. Exits non-zero unless
# every run SUCCEEDED. RUNS (per pool, default 2) and KEEP_DIR tune it; the
# dispatch scenario test reuses it.
set -eu
PUSHPOOL=${1:-build/pushpool}
RUNS=${RUNS:-2}
T=${KEEP_DIR:-$(mktemp -d)}
mkdir -p "$T"
MOCK_PID=
cleanup() {
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	[ -n "${KEEP_DIR:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM

# Throwaway credentials that only the mock knows.
openssl genrsa -out "$T/key.pem" 2048 2>/dev/null
pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$T/key.pem")
AKID=AKIDDEMO000000000001
AWS_SECRET=demo-aws-secret-key-not-real
AZ_CLIENT=7e0f4a8e-5a38-4b7c-9b6e-1f2d3c4b5a69
AZ_SECRET=demo-azure-client-secret
SUB=00000000-1111-2222-3333-444444444444
printf '%s' "$AZ_SECRET" >"$T/az-secret"
chmod 600 "$T/az-secret"

cat >"$T/sa.json" <<JSON
{"type": "service_account", "project_id": "demo-proj", "private_key_id": "k1",
 "private_key": "$pem", "client_email": "runner@demo-proj.iam.gserviceaccount.com",
 "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}
JSON
chmod 600 "$T/sa.json"

PUSHPOOL_MOCK_AZURE_CLIENTS="$AZ_CLIENT:$AZ_SECRET" PUSHPOOL_MOCK_MODAL_TOKEN=ak-demo:as-demo-secret \
	"$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" --seed 1 \
	--provision-seconds 0.1 --run-seconds 0.3 --aws-key "$AKID:$AWS_SECRET" \
	--gcp-key "$T/sa.json" >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q '^modal=http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 200 ]; then
		echo "demo: mock did not start:" >&2
		cat "$T/mock.log" >&2
		exit 1
	fi
	sleep 0.05
done
BASE=$(sed -n 's/^url=//p' "$T/ports")
MODAL=$(sed -n 's/^modal=//p' "$T/ports")

cat >"$T/pushpool.conf" <<CONF
[dispatcher]
state_dir = $T/state
status_interval = 0.2
backoff_base_ms = 50
backoff_max_ms = 1000
max_submitting = 32

[credentials "gcp"]
type = gcp
source = file
file = $T/sa.json
token_uri = $BASE/google/token

[credentials "aws"]
type = aws
source = static
access_key_id = $AKID
secret_access_key = $AWS_SECRET
region = us-east-1

[credentials "azure"]
type = azure
source = secret
tenant_id = demo-tenant
client_id = $AZ_CLIENT
client_secret_file = $T/az-secret
subscription_id = $SUB
authority = $BASE/azure

[credentials "modal"]
type = modal
source = token
token_id = ak-demo
token_secret = as-demo-secret

[pool "cloud-run"]
type = cloud-run-v2:push
credentials = gcp
endpoint = $BASE/google
job_variables = {"region": "europe-west1", "image": "repo/flows:1"}

[pool "ecs"]
type = ecs:push
credentials = aws
endpoint = $BASE/aws/ecs
job_variables = {"cluster": "default", "image": "repo/flows:1", "network_configuration": {"subnets": ["subnet-1"], "assignPublicIp": "DISABLED"}}

[pool "aci"]
type = azure-container-instance:push
credentials = azure
endpoint = $BASE/azure
job_variables = {"resource_group_name": "rg-flows", "subscription_id": "$SUB", "image": "repo/flows:1", "task_watch_poll_interval": 0.2}

[pool "modal"]
type = modal:push
credentials = modal
endpoint = $MODAL
job_variables = {"image": "python:3.12-slim", "command": "python -c 'print(42)'"}
CONF
mkdir -p "$T/state"

echo "== scheduling $RUNS run(s) in each of 4 pools"
for pool in cloud-run ecs aci modal; do
	"$PUSHPOOL" schedule -c "$T/pushpool.conf" -p "$pool" --count "$RUNS" --name "demo-$pool" >/dev/null
done
# Optional fault injection (one JSON object per line), used by the tests.
if [ -n "${MOCK_FAULTS:-}" ]; then
	printf '%s\n' "$MOCK_FAULTS" | while read -r f; do
		[ -n "$f" ] && curl -fsS -X POST -H 'Content-Type: application/json' -d "$f" \
			"$BASE/control/faults" >/dev/null
	done
fi
echo "== pushpool once --wait"
rc=0
"$PUSHPOOL" once -c "$T/pushpool.conf" --wait --timeout 300 2>"$T/once.log" || rc=$?
echo "== pushpool runs ls"
"$PUSHPOOL" runs -c "$T/pushpool.conf" ls
total=$((RUNS * 4))
[ -n "${KEEP_DIR:-}" ] && curl -fsS "$BASE/control/stats" >"$T/stats.json"
ok=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls --state SUCCEEDED | grep -c -- '-' || true)
if [ "$rc" -ne 0 ] || [ "$ok" -ne "$total" ]; then
	echo "demo: once exited $rc; $ok of $total runs SUCCEEDED" >&2
	tail -n 30 "$T/once.log" >&2
	exit 1
fi
echo "== all $total runs SUCCEEDED"
