#!/bin/sh
# Run logs from each cloud against `pushpool mock` (every mock job writes a
# few lines through its run, a traceback when it fails): `runs logs
# --follow` prints a job's output on ECS (CloudWatch Logs), Cloud Run
# (Cloud Logging), ACI (container logs) and Modal (sandbox logs) and ends
# when the run does; a failing job's last lines are in `runs show`; the
# Prefect API key the job prints comes out redacted; --tail, --since, and a
# run that never started.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
MOCK_PID=
SERVE_PID=
cleanup() {
	# Whatever they exit with, both are stopped and the files removed.
	if [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null; then
		wait "$SERVE_PID" 2>/dev/null || true
	fi
	if [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null; then
		wait "$MOCK_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$T/serve.log" ] && tail -n 20 "$T/serve.log" >&2
	exit 1
}

AKID=AKIDPUSHPOOLLOGS
AWS_SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYLOGSKEY00
CLIENT=7e0f4a8e-5a38-4b7c-9b6e-1f2d3c4b5a69
AZ_SECRET=scenario-logs-azure-secret
SUB=6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f
KEY=pnu_logsScenarioPrefectKey0123456789
openssl genrsa -out "$T/key.pem" 2048 2>/dev/null
pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$T/key.pem")
write_sa() {
	cat >"$T/sa.json" <<EOF
{"type": "service_account", "project_id": "logs-proj", "private_key_id": "k1",
 "private_key": "$pem", "client_email": "runner@logs-proj.iam.gserviceaccount.com",
 "client_id": "1", "token_uri": "$1"}
EOF
}
write_sa "http://127.0.0.1:1/token"
chmod 600 "$T/sa.json"

# A 3 s run writes a line every few tenths of a second: --follow sees the
# output grow.
PUSHPOOL_MOCK_AWS_KEYS="$AKID:$AWS_SECRET" PUSHPOOL_MOCK_AZURE_CLIENTS="$CLIENT:$AZ_SECRET" \
	PUSHPOOL_MOCK_MODAL_TOKEN=ak-logs:as-logs-secret "$PUSHPOOL" mock --listen 127.0.0.1:0 \
	--port-file "$T/ports" --seed 25 --provision-seconds 0.2 --run-seconds 3 \
	--gcp-key "$T/sa.json" >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q '^modal=http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(sed -n 's/^url=//p' "$T/ports")
MODAL=$(sed -n 's/^modal=//p' "$T/ports")
write_sa "$BASE/google/token"
chmod 600 "$T/sa.json"
printf '%s' "$AZ_SECRET" >"$T/az-secret"
printf '%s' "$KEY" >"$T/prefect-key"
chmod 600 "$T/az-secret" "$T/prefect-key"

# Each job prints the Prefect API key it is given (PUSHPOOL_MOCK_ECHO).
ECHO='"PUSHPOOL_MOCK_ECHO": "connecting with key $PREFECT_API_KEY"'
cat >"$T/pushpool.conf" <<EOF
[dispatcher]
state_dir = $T
status_interval = 0.1
backoff_base_ms = 20
backoff_max_ms = 200
prefect_api_url = http://127.0.0.1:1/api
prefect_api_key_file = $T/prefect-key

[credentials "aws"]
type = aws
source = static
access_key_id = $AKID
secret_access_key = $AWS_SECRET
region = us-east-1

[credentials "gcp"]
type = gcp
source = file
file = $T/sa.json
token_uri = $BASE/google/token

[credentials "az"]
type = azure
source = secret
tenant_id = logs-tenant
client_id = $CLIENT
client_secret_file = $T/az-secret
subscription_id = $SUB
authority = $BASE/azure

[credentials "modal"]
type = modal
source = token
token_id = ak-logs
token_secret = as-logs-secret

[pool "ecs"]
type = ecs:push
credentials = aws
endpoint = $BASE/aws/ecs
job_variables = {"cluster": "default", "image": "repo/flows:1", "network_configuration": {"subnets": ["subnet-1"]}, "configure_cloudwatch_logs": true, "execution_role_arn": "arn:aws:iam::123456789012:role/exec", "env": {$ECHO}}

[pool "cr"]
type = cloud-run-v2:push
credentials = gcp
endpoint = $BASE/google
job_variables = {"region": "us-central1", "image": "repo/flows:1", "env": {$ECHO}}

# ACI deletes a container's output with its group: kept, --follow can read
# to the end after the run is recorded.
[pool "aci"]
type = azure-container-instance:push
credentials = az
endpoint = $BASE/azure
job_variables = {"resource_group_name": "rg-flows", "subscription_id": "$SUB", "image": "repo/flows:1", "task_watch_poll_interval": 0.1, "keep_container_group": true, "env": {$ECHO}}

[pool "md"]
type = modal:push
credentials = modal
endpoint = $MODAL
job_variables = {"image": "python:3.12-slim", "env": {$ECHO}}
EOF
pp() {
	"$PUSHPOOL" -c "$T/pushpool.conf" "$@"
}
pool_of() {
	pp runs show "$1" | sed -n 's/^pool: *//p'
}

# A run that never started has no output, and says so; bad options are 64.
idle=$(pp schedule -p ecs --in 1d)
out=$(pp runs logs "$idle" 2>&1) || fail "logs of an unstarted run exited $?: $out"
echo "$out" | grep -q 'never started' || fail "unstarted run: $out"
rc=0
pp runs logs "$idle" --tail -1 >/dev/null 2>&1 || rc=$?
[ $rc -eq 64 ] || fail "--tail -1 exited $rc"

ok=$(for p in ecs cr aci md; do pp schedule -p "$p"; done)
bad=$(for p in ecs cr aci md; do pp schedule -p "$p" -v "env={$ECHO, \"PUSHPOOL_MOCK_FAIL\": \"1\"}"; done)
# Not through pp: $! must be serve itself, not a subshell, to stop it.
"$PUSHPOOL" -c "$T/pushpool.conf" serve >"$T/serve.log" 2>&1 &
SERVE_PID=$!

n=0
for id in $ok $bad; do
	n=$((n + 1))
	# --follow ends by itself once the run has ended: a generous bound only.
	timeout 90 "$PUSHPOOL" -c "$T/pushpool.conf" runs logs "$id" --follow >"$T/out.$n" \
		2>"$T/err.$n" || fail "runs logs --follow $id exited $?: $(cat "$T/err.$n")"
	state=$(pp runs show "$id" | sed -n 's/^state: *//p')
	case "$state" in
	SUCCEEDED | FAILED) ;;
	*) fail "--follow ended while run $id ($(pool_of "$id")) is $state" ;;
	esac
	for line in 'pushpool-mock: job started' 'connecting with key \[REDACTED\]' \
		'pushpool-mock: working'; do
		grep -q "^20[0-9-]*T[0-9:.]*Z  $line\$" "$T/out.$n" ||
			fail "run $id ($(pool_of "$id")): no '$line' in: $(cat "$T/out.$n")"
	done
	! grep -q "$KEY" "$T/out.$n" "$T/err.$n" || fail "the Prefect key reached the output of $id"
done

# The successful runs' output ends with "done", the failing ones' with the
# traceback, and a failed run's error and events hold its last lines.
for id in $ok; do
	pp runs logs "$id" | tail -n 1 | grep -q 'pushpool-mock: done$' ||
		fail "run $id ($(pool_of "$id")): last line is not done: $(pp runs logs "$id")"
	# --since: nothing written after a time to come, everything within the hour.
	[ -z "$(pp runs logs "$id" --since 2099-01-01T00:00:00Z)" ] ||
		fail "run $id ($(pool_of "$id")): --since a future time printed lines"
	[ "$(pp runs logs "$id" --since 1h | wc -l)" -eq 4 ] ||
		fail "run $id ($(pool_of "$id")): --since 1h: $(pp runs logs "$id" --since 1h)"
done
for id in $bad; do
	last=$(pp runs logs "$id" --tail 1)
	[ "$(echo "$last" | wc -l)" -eq 1 ] || fail "--tail 1 gave more than a line: $last"
	echo "$last" | grep -q 'RuntimeError: simulated failure' ||
		fail "run $id ($(pool_of "$id")): --tail 1 is not the error: $last"
	show=$(pp runs show "$id")
	echo "$show" | grep -q '^state: *FAILED' || fail "run $id did not fail: $show"
	echo "$show" | grep -q '^last error: .*last output: .*RuntimeError: simulated failure' ||
		fail "run $id ($(pool_of "$id")): no last output in its error: $show"
	echo "$show" | grep -q 'finishing FAILED: .*Traceback (most recent call last)' ||
		fail "run $id ($(pool_of "$id")): no last output in its events: $show"
	echo "$show" | grep -q 'key \[REDACTED\]' ||
		fail "run $id ($(pool_of "$id")): the echoed key is not redacted: $show"
	! echo "$show" | grep -q "$KEY" || fail "the Prefect key reached runs show"
done
! grep -q "$KEY" "$T/serve.log" || fail "the Prefect key reached the dispatcher's log"
echo "runs logs --follow on ecs, cloud-run, aci and modal; failed runs' last lines in runs show"
