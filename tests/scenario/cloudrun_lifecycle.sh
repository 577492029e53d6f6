#!/bin/sh
# Cloud Run v2 end to end against `pushpool mock`: success with cleanup, job
# failure, cancel on timeout, replay adopting the same execution, lost
# answers to :run never starting a second execution, throttling.
set -eu
. "$(dirname "$0")/../retry-lib.sh"
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
# Until the binary has both commands there is nothing to drive.
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

# A throwaway service-account key; the mock verifies our JWTs with it.
openssl genrsa -out "$T/key.pem" 2048 2>/dev/null
pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$T/key.pem")
write_sa() {
	cat >"$T/sa.json" <<EOF
{"type": "service_account", "project_id": "scenario-proj", "private_key_id": "k1",
 "private_key": "$pem", "client_email": "runner@scenario-proj.iam.gserviceaccount.com",
 "client_id": "1", "token_uri": "$1"}
EOF
}
write_sa "http://127.0.0.1:1/token"

"$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" --seed 11 \
	--provision-seconds 0.1 --run-seconds 0.3 --gcp-key "$T/sa.json" >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q 'http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$T/ports" | head -n 1)
write_sa "$BASE/google/token"

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

cat >"$T/pushpool.conf" <<EOF
[dispatcher]
status_interval = 0.1
backoff_base_ms = 20
backoff_max_ms = 200

[credentials "gcp"]
type = gcp
source = file
file = $T/sa.json
token_uri = $BASE/google/token

[pool "cr"]
type = cloud-run-v2:push
credentials = gcp
endpoint = $BASE/google
job_variables = {"region": "europe-west1", "image": "repo/flows:1"}
EOF
run() {
	"$PUSHPOOL" run -c "$T/pushpool.conf" -p cr "$@"
}

# 1. success: the execution name, SUCCEEDED, and the job is deleted.
out=$(run --wait) || fail "successful run exited $?: $out"
echo "$out" | grep -q '^projects/scenario-proj/locations/europe-west1/jobs/pp-[0-9a-f]*-1/executions/' ||
	fail "no execution name in: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "no SUCCEEDED in: $out"
[ "$(stat live_jobs)" -eq 0 ] || fail "a job was left behind"
# The new job was reconciling (cloudrun.reconcile, 1 s) and CreateJob's
# operation not done (cloudrun.lro): pushpool read the job until it was
# ready and ran it then, never too early.
[ "$(keyed requests cloudrun:GetJob)" -ge 2 ] || fail "the job was not waited for"
[ "$(stat cloudrun.run_not_ready)" -eq 0 ] || fail "RunJob was sent before the job was ready"

# 2. the container fails: exit status 1 and the reason.
rc=0
out=$(run --wait -v 'env={"PUSHPOOL_MOCK_FAIL": "1"}') || rc=$?
[ $rc -eq 1 ] || fail "failing job exited $rc: $out"
echo "$out" | grep -q '^FAILED' || fail "no FAILED in: $out"

# 3. cancel on timeout: exit 75. The execution is held
# (PUSHPOOL_MOCK_HOLD), so it runs until cancelled and cannot end before
# the cancel, however slow the machine; the timeout falls while the new job
# reconciles (1 s), so the submission is replayed to find the execution,
# which is cancelled once.
cancels=$(stat cloudrun.cancel)
rc=0
out=$(run --wait --timeout 0.5 -v 'env={"PUSHPOOL_MOCK_HOLD": "1"}' 2>&1) || rc=$?
[ $rc -eq 75 ] || fail "timed-out run exited $rc: $out"
echo "$out" | grep -q 'cancelling projects/' || fail "no cancel in: $out"
# The cancelled execution kept its tasks running for a while
# (cloudrun.cancel_drain, 1 s; DeleteJob refused meanwhile by
# cloudrun.delete_busy): pushpool deleted the job only once it had stopped.
[ "$(stat cloudrun.cancel)" -eq $((cancels + 1)) ] || fail "the execution was not cancelled once: $out"
[ "$(stat live_jobs)" -eq 0 ] || fail "the cancelled run's job was left behind"
[ "$(stat cloudrun.delete_refused)" -eq 0 ] || fail "DeleteJob was sent while the execution ran"

# 4. replaying a run adopts its job and execution (409 ALREADY_EXISTS).
ID=0b7e1a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b
first=$(run --run-id $ID) || fail "first submission failed: $first"
second=$(run --run-id $ID) || fail "replay failed: $second"
[ "$first" = "$second" ] || fail "replay started another execution: $first / $second"

# 5. answers to :run lost after the mock acted: one execution per run.
dropped=$(keyed dropped cloudrun:RunJob)
faults '{"api": "cloudrun", "reset_after_action_rate": 0.5}'
for id in 1 2 3 4; do
	out=$(run --run-id 5c6d7e8f-1a2b-4c3d-8e4f-a1b2c3d4e5f$id) || fail "lossy run $id failed: $out"
	[ "$(keyed cloudrun.executions pp-5c6d7e8f1a2b4c3d8e4fa1b2c3d4e5f$id-1)" -eq 1 ] ||
		fail "not exactly one execution for run $id:" \
			"$(curl -fsS "$BASE/control/stats" | grep -o "cloudrun.executions[^}]*")"
done
faults '{"api": "cloudrun", "reset_after_action_rate": 0}'
[ "$(keyed dropped cloudrun:RunJob)" -gt "$dropped" ] || fail "no RunJob answer was lost"

# 6. throttling storm: the runs still land within the retry budget.
throttled=$(keyed injected cloudrun.throttled)
faults '{"api": "cloudrun", "throttle_rate": 0.5}'
for n in 1 2 3; do
	run >/dev/null 2>>"$T/throttled.err" || fail "throttled run $n failed: $(tail -n 5 "$T/throttled.err")"
done
faults '{"api": "cloudrun", "throttle_rate": 0}'
[ "$(keyed injected cloudrun.throttled)" -gt "$throttled" ] || fail "nothing was throttled"
# Bounded: every wait is full jitter under backoff_max_ms.
retries=$(retry_waits "$T/throttled.err" 0 200)
echo "throttling: 3 runs landed through $retries retries, each wait within 200 ms"
echo "ok"
