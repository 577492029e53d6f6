#!/bin/sh
# Modal end to end against `pushpool mock` (real gRPC over h2c): success,
# container failure, cancel on timeout, replay adopting the same sandbox,
# lost SandboxCreate answers never starting a second sandbox, throttling,
# and a rejected token.
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

PUSHPOOL_MOCK_MODAL_TOKEN=ak-scenario:as-scenario-secret "$PUSHPOOL" mock --listen 127.0.0.1:0 \
	--port-file "$T/ports" --seed 7 --provision-seconds 0.1 --run-seconds 0.3 \
	>"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q '^modal=http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(sed -n 's/^url=//p' "$T/ports")
MODAL=$(sed -n 's/^modal=//p' "$T/ports")

stat() {
	curl -fsS "$BASE/control/stats" | tr -d ' \n' | grep -o "\"$1\":[0-9]*" | head -n 1 |
		sed 's/.*://' | grep . || echo 0
}
faults() {
	curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" "$BASE/control/faults" >/dev/null
}

write_conf() {
	cat >"$T/pushpool.conf" <<EOF
[dispatcher]
status_interval = 0.1
backoff_base_ms = 20
backoff_max_ms = 200

[credentials "modal"]
type = modal
source = token
token_id = ak-scenario
token_secret = $1

[pool "md"]
type = modal:push
credentials = modal
endpoint = $MODAL
job_variables = {"image": "python:3.12-slim", "command": "python -c 'print(42)'"}
EOF
}
write_conf as-scenario-secret
run() {
	"$PUSHPOOL" run -c "$T/pushpool.conf" -p md "$@"
}

# 1. success: the sandbox id, SUCCEEDED, nothing left running.
out=$(run --wait) || fail "successful run exited $?: $out"
echo "$out" | grep -q '^sb-[0-9a-f]*' || fail "no sandbox id in: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "no SUCCEEDED in: $out"
[ "$(stat live_modal_sandboxes)" -eq 0 ] || fail "a sandbox was left running"
# The image was built first (modal.image_build, 3 s) and pushpool joined the
# build: a long-poll held until the result.
[ "$(stat modal.image_builds)" -eq 1 ] || fail "no image build: $(curl -fsS "$BASE/control/stats")"
[ "$(stat modal.long_polls_held)" -ge 1 ] || fail "ImageJoinStreaming was not held"

# 2. the container fails (marker in env): exit status 1.
rc=0
out=$(run --wait -v 'env={"PUSHPOOL_MOCK_FAIL": "1"}') || rc=$?
[ $rc -eq 1 ] || fail "failing sandbox exited $rc: $out"
echo "$out" | grep -q '^FAILED' || fail "no FAILED in: $out"

# 3. cancel on timeout terminates the sandbox: exit 75, nothing left running.
# The sandbox is held (PUSHPOOL_MOCK_HOLD): it starts and runs until
# terminated, so it cannot end before the timeout, however slow the machine.
terminated=$(stat modal.terminated)
rc=0
out=$(run --wait --timeout 0.5 -v 'env={"PUSHPOOL_MOCK_HOLD": "1"}' 2>&1) || rc=$?
[ $rc -eq 75 ] || fail "timed-out run exited $rc: $out"
echo "$out" | grep -q 'cancelling sb-' || fail "no cancel in: $out"
[ "$(stat modal.terminated)" -eq $((terminated + 1)) ] || fail "the sandbox was not terminated once: $out"
[ "$(stat live_modal_sandboxes)" -eq 0 ] || fail "cancel left a sandbox running"

# 4. replaying a run adopts its sandbox (ALREADY_EXISTS / SandboxGetFromName).
ID=0b7e1a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b
first=$(run --run-id $ID -v 'env={"PUSHPOOL_MOCK_NOSTART": "1"}') || fail "first failed: $first"
second=$(run --run-id $ID -v 'env={"PUSHPOOL_MOCK_NOSTART": "1"}') || fail "replay failed: $second"
[ "$first" = "$second" ] || fail "replay started another sandbox: $first / $second"
[ "$(stat pp-0b7e1a523c4d4e5f8a9b0c1d2e3f4a5b-1)" -eq 1 ] || fail "replay created twice"

# 5. answers lost after the mock acted: one sandbox for the run.
ID=5c6d7e8f-1a2b-4c3d-8e4f-a1b2c3d4e5f6
faults '{"api": "modal", "reset_after_action_rate": 0.5}'
out=$(run --run-id $ID -v 'env={"PUSHPOOL_MOCK_NOSTART": "1"}') || fail "lossy run failed: $out"
faults '{"api": "modal", "reset_after_action_rate": 0}'
[ "$(stat pp-5c6d7e8f1a2b4c3d8e4fa1b2c3d4e5f6-1)" -eq 1 ] || fail "not exactly one sandbox"

# 6. throttling storm (RESOURCE_EXHAUSTED): the run still lands.
faults '{"api": "modal", "throttle_rate": 0.4}'
run >/dev/null 2>"$T/throttled.err" || fail "throttled run failed: $(tail -n 5 "$T/throttled.err")"
faults '{"api": "modal", "throttle_rate": 0}'
# Bounded: every wait is full jitter under backoff_max_ms.
retries=$(retry_waits "$T/throttled.err" 0 200)
echo "throttling: the run landed through $retries retries, each wait within 200 ms"

# 7. a long build: ImageJoinStreaming holds the call for the 25 s pushpool
# asks, ends it with no result, and pushpool asks again from the last entry.
# The mock's clock is held and moved by hand, so no test time passes.
clock() { curl -fsS -X POST -d "$1" "$BASE/control/clock" >/dev/null || fail "clock $1"; }
# wait_stat NAME N: until the counter reaches N (30 s deadline).
wait_stat() {
	i=0
	while [ "$(stat "$1")" -lt "$2" ]; do
		i=$((i + 1))
		[ $i -gt 600 ] && fail "$1 stayed below $2: $(curl -fsS "$BASE/control/stats")"
		sleep 0.05
	done
}
curl -fsS -d '{"name":"modal.image_build","seconds":40}' "$BASE/control/behaviours" >/dev/null
held=$(stat modal.long_polls_held)
clock '{"clock":"hold"}'
run --wait -v image=python:3.13-slim >"$T/long.out" 2>&1 &
LONG=$!
wait_stat modal.long_polls_held $((held + 1))
clock '{"advance_ms":25100}' # past the 25 s pushpool asks for
wait_stat modal.long_poll_timeouts 1
wait_stat modal.long_polls_held $((held + 2))
[ "$(stat modal.join_resumes)" -ge 1 ] || fail "the second join did not resume from an entry"
clock '{"advance_ms":16000}'
clock '{"clock":"run"}'
wait $LONG || fail "long build run exited $?: $(cat "$T/long.out")"
grep -q '^SUCCEEDED' "$T/long.out" || fail "no SUCCEEDED after a long build: $(cat "$T/long.out")"
[ "$(stat modal.image_builds)" -eq 2 ] || fail "the second image was not built"

# 8. a wrong token secret: exit 77 and the secret never printed.
write_conf as-wrong-secret
rc=0
out=$(run 2>&1) || rc=$?
[ $rc -eq 77 ] || fail "bad token exited $rc: $out"
echo "$out" | grep -q 'UNAUTHENTICATED' || fail "no UNAUTHENTICATED in: $out"
if echo "$out" | grep -q 'as-wrong-secret'; then fail "secret leaked: $out"; fi
echo "ok"
