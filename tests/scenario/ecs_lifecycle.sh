#!/bin/sh
# ECS end to end against `pushpool mock`: success, job failure, crash,
# cancel on timeout, lost RunTask answers, throttling, one task definition
# for many runs, and cleanup.
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

AKID=AKIDPUSHPOOLSCENARIO
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYSCENARIOKEY
PUSHPOOL_MOCK_AWS_KEYS="$AKID:$SECRET" "$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" \
	--seed 5 --provision-seconds 0.1 --run-seconds 0.3 >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q 'http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$T/ports" | head -n 1)

# One counter from /control/stats, by name (0 when absent).
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

[credentials "aws"]
type = aws
source = static
access_key_id = $AKID
secret_access_key = $SECRET
region = us-east-1

[pool "ecs"]
type = ecs:push
credentials = aws
endpoint = $BASE/aws/ecs
job_variables = {"cluster": "default", "image": "repo/flows:1", "network_configuration": {"subnets": ["subnet-1"], "assignPublicIp": "DISABLED"}, "auto_deregister_task_definition": true}

[pool "ecs-shared"]
type = ecs
credentials = aws
endpoint = $BASE/aws/ecs
job_variables = {"family": "scenario-shared", "network_configuration": {"subnets": ["subnet-1"]}, "match_latest_revision_in_family": true}
EOF
run() {
	"$PUSHPOOL" run -c "$T/pushpool.conf" "$@"
}

# 1. success: the task ARN, then SUCCEEDED; the definition is deregistered.
out=$(run -p ecs --wait) || fail "successful run exited $?: $out"
echo "$out" | grep -q '^arn:aws:ecs:us-east-1:[0-9]*:task/' || fail "no task ARN in: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "no SUCCEEDED in: $out"
[ "$(stat DeregisterTaskDefinition)" -ge 1 ] || fail "task definition left registered"

# ECS is eventually consistent (ecs.missing, on by default): DescribeTasks
# answered MISSING for the new task, and pushpool kept polling through it.
[ "$(stat ecs.missing_answers)" -ge 1 ] ||
	fail "no MISSING answer was given: $(curl -fsS "$BASE/control/stats")"

# 2. the container exits 1: exit status 1 with the exit code.
rc=0
out=$(run -p ecs --wait -v 'env={"PUSHPOOL_MOCK_FAIL": "1"}') || rc=$?
[ $rc -eq 1 ] || fail "failing job exited $rc: $out"
echo "$out" | grep -q '^FAILED.*exit code 1' || fail "no failure reason in: $out"

# 3. the task never starts: CRASHED with the stop reason.
rc=0
out=$(run -p ecs --wait -v 'env={"PUSHPOOL_MOCK_CRASH": "1"}') || rc=$?
[ $rc -eq 1 ] || fail "crashing job exited $rc: $out"
echo "$out" | grep -q '^CRASHED: TaskFailedToStart' || fail "no crash reason in: $out"

# 4. cancel on timeout: the task is held (PUSHPOOL_MOCK_HOLD), so it runs
#    until stopped and cannot end before --timeout, however slow the
#    machine; a timeout that falls during the submission replays it to
#    find the task and stops that. Either way: exit 75, one StopTask, and
#    the task stopped.
stops=$(stat StopTask)
rc=0
out=$(run -p ecs --wait --timeout 0.5 -v 'env={"PUSHPOOL_MOCK_HOLD": "1"}' 2>&1) || rc=$?
[ $rc -eq 75 ] || fail "timed-out run exited $rc: $out"
[ "$(stat StopTask)" -eq $((stops + 1)) ] || fail "StopTask not called once: $out"
[ "$(stat live_tasks)" -eq 0 ] || fail "the timed-out run's task still runs: $out"

# 5. answers lost after the mock acted: the clientToken keeps each run to
#    one task, and a lost RegisterTaskDefinition answer is found again.
tasks=$(stat RunTaskStarted)
dropped=$(keyed dropped ecs:RunTask)
faults '{"api": "ecs", "reset_after_action_rate": 0.5}'
for id in 1 2 3 4; do
	out=$(run -p ecs --run-id 11111111-2222-4333-8444-55555555555$id) ||
		fail "lossy run $id failed: $out"
done
faults '{"api": "ecs", "reset_after_action_rate": 0}'
[ "$(keyed dropped ecs:RunTask)" -gt "$dropped" ] ||
	fail "no RunTask answer was lost:" \
		"$(curl -fsS "$BASE/control/stats" | grep -o "\"dropped[^}]*")"
[ "$(stat RunTaskStarted)" -eq $((tasks + 4)) ] || fail "not exactly one task per run"

# 6. throttling storm: every run still lands, backoff keeps it bounded.
throttled=$(keyed injected ecs.throttled)
faults '{"api": "ecs", "throttle_rate": 0.5}'
for n in 1 2 3 4 5; do
	run -p ecs >/dev/null 2>>"$T/throttled.err" || fail "throttled run $n failed: $(tail -n 5 "$T/throttled.err")"
done
faults '{"api": "ecs", "throttle_rate": 0}'
[ "$(keyed injected ecs.throttled)" -gt "$throttled" ] || fail "nothing was throttled"
# Bounded: every wait is full jitter under backoff_max_ms.
retries=$(retry_waits "$T/throttled.err" 0 200)
echo "throttling: 5 runs landed through $retries retries, each wait within 200 ms"

# 7. many runs of one deployment register its definition once.
regs=$(stat RegisterTaskDefinition)
n=0
while [ $n -lt 50 ]; do
	run -p ecs-shared >/dev/null || fail "shared-definition run $n failed"
	n=$((n + 1))
done
[ "$(stat RegisterTaskDefinition)" -eq $((regs + 1)) ] ||
	fail "the definition was registered more than once"
echo "ok"
