#!/bin/sh
# Canary secrets: one distinct canary is planted in every credential type
# (the GCP service-account key, an AWS secret key and session token, an
# Azure client secret and client-certificate key, the Modal token secret,
# the Prefect API key, inline and in files), then check, check --print,
# auth check, render, render --request, schedule, once --wait, runs ls/show
# and serve with /metrics run at log level debug. Every byte they print and
# the run store must hold 0 copies of any canary. The mock is the fake
# cloud that must receive the secrets, so its own log is not searched; the
# config file, which holds them, proves that the search finds them.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
T=$(mktemp -d)
MOCK_PID=
SV=
trap '[ -n "$SV" ] && kill -9 $SV 2>/dev/null; [ -n "$MOCK_PID" ] && kill $MOCK_PID 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
O=$T/out
mkdir -p "$O" "$T/state"

# Key material is secret too: a line from the middle of each private key.
openssl genrsa -out "$T/key.pem" 2048 2>/dev/null
C_GCP=$(sed -n 10p "$T/key.pem")
cp "$ROOT/tests/data/keys/test_only_azure_client.pem" "$T/client.pem"
chmod 600 "$T/client.pem"
C_AZCERT=$(sed -n 10p "$T/client.pem")
C_AWS=CANARYawsSecretKey0000000000000000000001
C_AWSTOK=CANARYawsSessionToken00000000000000000002
C_AZ=CANARY-azure-client-secret-000000000003
C_MODAL=as-CANARY-modal-token-secret-0000000004
C_PF=pnu_CANARYprefectApiKey000000000000000005
C_PFFILE=pnu_CANARYprefectKeyFile00000000000006
CANARIES="$C_GCP $C_AZCERT $C_AWS $C_AWSTOK $C_AZ $C_MODAL $C_PF $C_PFFILE"
AKID=AKIDCANARY0000000001
AZ_CLIENT=7e0f4a8e-5a38-4b7c-9b6e-1f2d3c4b5a69
AZ_CERT_CLIENT=0c0ffee0-5a38-4b7c-9b6e-1f2d3c4b5a69
SUB=00000000-1111-2222-3333-444444444444
pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$T/key.pem")
cat >"$T/sa.json" <<JSON
{"type": "service_account", "project_id": "canary-proj", "private_key_id": "k1",
 "private_key": "$pem", "client_email": "runner@canary-proj.iam.gserviceaccount.com",
 "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}
JSON
printf '%s\n' "$C_PFFILE" >"$T/prefect.key"
printf '%s:%s\n' "$AKID" "$C_AWS" >"$T/aws-keys"
chmod 600 "$T/sa.json" "$T/prefect.key" "$T/aws-keys"

PUSHPOOL_MOCK_AZURE_CLIENTS="$AZ_CLIENT:$C_AZ" \
PUSHPOOL_MOCK_AZURE_CERTS="$AZ_CERT_CLIENT:$T/client.pem" \
PUSHPOOL_MOCK_MODAL_TOKEN="ak-canary:$C_MODAL" PUSHPOOL_MOCK_PREFECT_KEY="$C_PF" \
	"$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" --seed 1 \
	--provision-seconds 0.1 --run-seconds 0.2 --aws-key-file "$T/aws-keys" \
	--gcp-key "$T/sa.json" >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
until grep -q '^modal=' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 600 ] || { cat "$T/mock.log"; fail "mock did not start"; }
	sleep 0.05
done
BASE=$(sed -n 's/^url=//p' "$T/ports")
MODAL=$(sed -n 's/^modal=//p' "$T/ports")
C=$T/pushpool.conf
cat >"$C" <<CONF
[dispatcher]
state_dir = $T/state
log_level = debug
status_interval = 0.2
metrics_listen = 127.0.0.1:9464
prefect_api_key_file = $T/prefect.key

[source "prefect"]
api_url = $BASE/prefect/api
api_key = $C_PF
poll_interval = 0.3

[credentials "gcp"]
type = gcp
source = file
file = $T/sa.json
token_uri = $BASE/google/token

[credentials "aws"]
type = aws
source = static
access_key_id = $AKID
secret_access_key = $C_AWS
region = us-east-1

[credentials "aws-session"]
type = aws
source = static
access_key_id = ASIACANARY0000000002
secret_access_key = $C_AWS
session_token = $C_AWSTOK
region = us-east-1
sts_endpoint = $BASE/aws/sts/

[credentials "azure"]
type = azure
source = secret
tenant_id = canary-tenant
client_id = $AZ_CLIENT
client_secret = $C_AZ
subscription_id = $SUB
authority = $BASE/azure

[credentials "azure-cert"]
type = azure
source = certificate
tenant_id = canary-tenant
client_id = $AZ_CERT_CLIENT
certificate_path = $T/client.pem
subscription_id = $SUB
authority = $BASE/azure

[credentials "modal"]
type = modal
source = token
token_id = ak-canary
token_secret = $C_MODAL
modal_server_url = $MODAL

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
credentials = azure-cert
endpoint = $BASE/azure
job_variables = {"resource_group_name": "rg-flows", "subscription_id": "$SUB", "image": "repo/flows:1", "task_watch_poll_interval": 0.2}

[pool "modal"]
type = modal:push
credentials = modal
endpoint = $MODAL
job_variables = {"image": "python:3.12-slim", "command": "python -c 'print(42)'"}
CONF

pp() { # NAME ARGS...: run pushpool, keeping stdout and stderr as $O/NAME.*
	name=$1
	shift
	"$PUSHPOOL" "$@" >"$O/$name.out" 2>"$O/$name.err"
}
pp check check -c "$C" || fail "check: $(cat "$O/check.out" "$O/check.err")"
pp check-print check -c "$C" --print || fail "check --print exited $?"
for cred in gcp aws azure azure-cert modal; do
	pp "auth-$cred" auth check "$cred" -c "$C" || fail "auth check $cred: $(cat "$O/auth-$cred.err")"
done
pp auth-aws-session auth check aws-session -c "$C" ||
	fail "auth check aws-session: $(cat "$O/auth-aws-session.err")"
for pool in cloud-run ecs aci modal; do
	pp "render-$pool" render -p "$pool" -c "$C" || fail "render $pool: $(cat "$O/render-$pool.err")"
	pp "request-$pool" render -p "$pool" -c "$C" --request ||
		fail "render --request $pool: $(cat "$O/request-$pool.err")"
	pp "schedule-$pool" schedule -c "$C" -p "$pool" --count 2 ||
		fail "schedule $pool: $(cat "$O/schedule-$pool.err")"
done
pp once once -c "$C" --wait --timeout 120 || fail "once --wait exited $?: $(tail -n 5 "$O/once.err")"
pp runs-ls runs -c "$C" ls || fail "runs ls: $(cat "$O/runs-ls.err")"
[ "$(grep -c SUCCEEDED "$O/runs-ls.out")" = 8 ] || fail "runs: $(cat "$O/runs-ls.out")"
for id in $(awk 'NR > 1 { print $1 }' "$O/runs-ls.out"); do
	pp "show-$id" runs -c "$C" show "$id" || fail "runs show $id: $(cat "$O/show-$id.err")"
done
# serve, with /metrics and /healthz scraped, for the long-running logs; the
# port is not reported, so try a few until one is free.
try=0
scraped=
while [ -z "$scraped" ] && [ $try -lt 5 ]; do
	port=$((20000 + ($$ * 7 + try * 7919) % 40000))
	try=$((try + 1))
	sed -i "s/^metrics_listen = .*/metrics_listen = 127.0.0.1:$port/" "$C"
	"$PUSHPOOL" serve -c "$C" >>"$O/serve.out" 2>>"$O/serve.err" &
	SV=$!
	i=0
	while [ $i -lt 50 ] && kill -0 "$SV" 2>/dev/null; do
		if curl -fsS "http://127.0.0.1:$port/healthz" >"$O/healthz.out" 2>/dev/null; then
			curl -fsS "http://127.0.0.1:$port/metrics" >"$O/metrics.out" ||
				fail "GET /metrics failed"
			scraped=1
			break
		fi
		i=$((i + 1))
		sleep 0.1
	done
	kill -TERM "$SV" 2>/dev/null
	wait "$SV" || [ -z "$scraped" ] || fail "serve exited $? on SIGTERM"
	SV=
done
[ -n "$scraped" ] || fail "serve never answered /healthz: $(tail -n 3 "$O/serve.err")"
grep -q '^pushpool_' "$O/metrics.out" || fail "no metrics: $(head -c 300 "$O/metrics.out")"

hits=0
for c in $CANARIES; do
	grep -qF -- "$c" "$C" "$T/sa.json" "$T/client.pem" "$T/prefect.key" ||
		fail "the search cannot find canary $c where it was planted"
	found=$(grep -rlF -- "$c" "$O" "$T/state" || true)
	if [ -n "$found" ]; then
		echo "canary $c found in: $found"
		hits=$((hits + 1))
	fi
done
[ "$hits" = 0 ] || fail "$hits canaries leaked"
echo "8 canaries in 7 credential types: 0 hits in $(ls "$O" | wc -l) outputs and the store"
