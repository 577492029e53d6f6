#!/bin/sh
# Azure Container Instances end to end against `pushpool mock`: Entra client
# secret auth, success with the group deleted afterwards, container failure,
# cancel on timeout, start timeout, replay adopting the group, lost answers
# never creating a second group, throttling.
set -eu
. "$(dirname "$0")/../retry-lib.sh"
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
for cmd in mock run; do
	# A missing command (or pushpool-mock missing beside the binary) is a
	# failure, not a skip: the test would otherwise pass without running.
	if ! "$PUSHPOOL" $cmd --help >/dev/null 2>&1; then
		echo "FAIL: '$PUSHPOOL $cmd --help' does not work" >&2
		exit 1
	fi
done
T=$(mktemp -d)
MOCK_PID=
cleanup() {
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

CLIENT=7e0f4a8e-5a38-4b7c-9b6e-1f2d3c4b5a69
SECRET=scenario-aci-secret-value
PUSHPOOL_MOCK_AZURE_CLIENTS="$CLIENT:$SECRET" "$PUSHPOOL" mock --listen 127.0.0.1:0 \
	--port-file "$T/ports" --seed 7 --provision-seconds 0.2 --run-seconds 2 \
	>"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q 'http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$T/ports" | head -n 1)

stat() {
	curl -fsS "$BASE/control/stats" | tr -d ' \n' | grep -o "\"$1\":[0-9]*" | head -n 1 |
		sed 's/.*://' | grep . || echo 0
}
# One entry of a keyed map in /control/stats: keyed MAP KEY (0 when absent).
keyed() {
	curl -fsS "$BASE/control/stats" | tr -d ' \n' | grep -o "\"$1\":{[^}]*}" |
		grep -o "\"$2\":[0-9]*" | sed 's/.*://' | grep . || echo 0
}
faults() {
	curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" "$BASE/control/faults" >/dev/null
}

SUB=6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f
printf '%s' "$SECRET" >"$T/secret"
cat >"$T/pushpool.conf" <<EOF
[dispatcher]
status_interval = 0.1
backoff_base_ms = 20
backoff_max_ms = 200

[credentials "az"]
type = azure
source = secret
tenant_id = scenario-tenant
client_id = $CLIENT
client_secret_file = $T/secret
subscription_id = $SUB
authority = $BASE/azure

[pool "aci"]
type = azure-container-instance:push
credentials = az
endpoint = $BASE/azure
job_variables = {"resource_group_name": "rg-flows", "subscription_id": "$SUB", "image": "repo/flows:1", "task_watch_poll_interval": 0.1}
EOF
run() {
	"$PUSHPOOL" run -c "$T/pushpool.conf" -p aci "$@"
}
GROUP_RE="^/subscriptions/$SUB/resourceGroups/rg-flows/providers/Microsoft.ContainerInstance/containerGroups/pp-[0-9a-f]*-1\$"

# 1. success: the group id, SUCCEEDED, and the group is deleted afterwards.
out=$(run --wait 2>"$T/err") || fail "successful run exited $?: $out $(cat "$T/err")"
echo "$out" | grep -q "$GROUP_RE" || fail "no container group id in: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "no SUCCEEDED in: $out"
[ "$(stat live_container_groups)" -eq 0 ] || fail "a container group was left behind"
grep -q "$SECRET" "$T/err" && fail "the client secret reached the output"

# 2. the container exits 1: exit status 1, the exit code, group deleted.
rc=0
out=$(run --wait -v 'env={"PUSHPOOL_MOCK_FAIL": "1"}' 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "failing run exited $rc: $out"
echo "$out" | grep -q '^FAILED: container exited with code 1' || fail "no FAILED in: $out"
[ "$(stat live_container_groups)" -eq 0 ] || fail "the failed group was left behind"

# 3. cancel on timeout: exit 75 and the deletion followed to its end. The
# group is held (PUSHPOOL_MOCK_HOLD), so its container runs until the group
# is deleted and cannot end before the timeout, however slow the machine.
deletes=$(keyed requests arm:ContainerGroups_Delete)
rc=0
out=$(run --wait --timeout 0.5 -v 'env={"PUSHPOOL_MOCK_HOLD": "1"}' 2>&1) || rc=$?
[ $rc -eq 75 ] || fail "timed-out run exited $rc: $out"
echo "$out" | grep -q 'cancelling /subscriptions/' || fail "no cancel in: $out"
[ "$(keyed requests arm:ContainerGroups_Delete)" -eq $((deletes + 1)) ] ||
	fail "the group was not deleted once: $out"
[ "$(stat live_container_groups)" -eq 0 ] || fail "the cancelled group is still there"

# 4. a container that never starts is a crash after the start timeout.
rc=0
out=$(run --wait -v 'env={"PUSHPOOL_MOCK_NOSTART": "1"}' -v task_start_timeout_seconds=1 2>&1) ||
	rc=$?
[ $rc -eq 1 ] || fail "never-starting run exited $rc: $out"
echo "$out" | grep -q '^CRASHED: container did not start within 1 s' || fail "no crash in: $out"
[ "$(stat live_container_groups)" -eq 0 ] || fail "the crashed group was left behind"

# 4b. an image that cannot be pulled (aci.pull_failure): ACI shows it in the
# container's events; the run FAILS at once with the registry's reason
# (no start timeout), and the group is deleted.
rc=0
out=$(run --wait -v image=repo/pushpool-mock-pull-fail:1 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "pull-failure run exited $rc: $out"
echo "$out" | grep -q '^FAILED: image pull failed: Failed to pull image "repo/pushpool-mock-pull-fail:1"' ||
	fail "no image pull failure in: $out"
[ "$(stat aci.pull_failures)" -eq 1 ] || fail "the mock saw no pull failure"
[ "$(stat live_container_groups)" -eq 0 ] || fail "the group that could not pull was left behind"
# Creating and deleting took time through the async operation (aci.async):
# every run above followed its operations to the end, but for the create
# of the timed-out run (3.), which is given up and deleted at once: 5
# deletes and 4 creates followed.
[ "$(keyed requests arm:OperationStatus)" -ge 9 ] ||
	fail "async operations not followed: $(curl -fsS "$BASE/control/stats")"

# 5. replaying a run adopts its group: one create, the same id.
ID=0b7e1a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b
first=$(run --run-id $ID) || fail "first submission failed: $first"
second=$(run --run-id $ID) || fail "replay failed: $second"
[ "$first" = "$second" ] || fail "replay gave another group: $first / $second"
[ "$(stat pp-0b7e1a523c4d4e5f8a9b0c1d2e3f4a5b-1)" -eq 1 ] || fail "replay created twice"

# 6. answers lost after the mock acted: still one group for the run.
ID=5c6d7e8f-1a2b-4c3d-8e4f-a1b2c3d4e5f6
faults '{"api": "aci", "reset_after_action_rate": 0.5}'
out=$(run --run-id $ID 2>&1) || fail "lossy run failed: $out"
faults '{"api": "aci", "reset_after_action_rate": 0}'
[ "$(stat pp-5c6d7e8f1a2b4c3d8e4fa1b2c3d4e5f6-1)" -eq 1 ] || fail "not exactly one group for one run"

# 7. throttling storm (429 + Retry-After): the run still lands.
faults '{"api": "aci", "throttle_rate": 0.5, "retry_after": 1}'
run --wait >/dev/null 2>"$T/throttled.err" || fail "throttled run failed: $(tail -n 5 "$T/throttled.err")"
faults '{"api": "aci", "throttle_rate": 0}'
# Every wait is the server's Retry-After (1 s): the jitter under
# backoff_max_ms (200 ms) never exceeds it.
retries=$(retry_waits "$T/throttled.err" 1000 1000)
echo "throttling: the run landed through $retries retries, each after Retry-After's 1000 ms"
echo "ok"
