#!/bin/sh
# No remote object left behind (issue 18): runs that fail after their create
# succeeded are cleaned up on the way to their terminal state, on each of the
# four clouds. The mock's step faults fail the step after the create:
#   cloudrun.run   RunJob answers UNAVAILABLE: the job exists, the run goes DEAD
#   aci.provision  the create operation ends Failed: the group exists, FAILED
#   ecs.capacity   RunTask has no capacity after the task definition was
#                  registered (auto_deregister_task_definition): DEAD
#   modal.wait     SandboxWait says the running sandbox is gone: CRASHED
# Afterwards the mock's /control/stats must show no live object.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
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

# Remote jobs that would run for 10 minutes: whatever is live at the end was
# left behind, not finished on its own.
MOCK_RUN_SECONDS=600
# A short lease bounds each op's retry budget (two thirds of it), so the
# failing RunJob gives up in seconds.
DISPATCHER_EXTRA="submit_attempts = 1
lease_seconds = 6
start_timeout = 0"
. "$(dirname "$0")/../../tools/mock-env.sh"

stats() { curl -fsS "$BASE/control/stats" | tr -d ' \n'; }
stat() {
	stats | grep -o "\"$1\":[0-9]*" | head -n 1 | sed 's/.*://' | grep . || echo 0
}
faults() {
	curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" "$BASE/control/faults" >/dev/null ||
		fail "POST /control/faults $1"
}
C="$T/pushpool.conf"

faults '[{"api":"cloudrun.run","error_rate":1},{"api":"aci.provision","error_rate":1},
	{"api":"ecs.capacity","error_rate":1},{"api":"modal.wait","error_rate":1}]'
for p in cloud-run aci modal; do
	"$PUSHPOOL" schedule -c "$C" -p $p >>"$T/ids" 2>"$T/err" || fail "schedule $p: $(cat "$T/err")"
done
"$PUSHPOOL" schedule -c "$C" -p ecs -v auto_deregister_task_definition=true >>"$T/ids" \
	2>"$T/err" || fail "schedule ecs: $(cat "$T/err")"

# --wait follows every run to its end; the bound is generous for a busy machine.
timeout 120 "$PUSHPOOL" once --wait -c "$C" >"$T/once.out" 2>"$T/once.err" || true
grep -q 'claimed 4,' "$T/once.out" || fail "once: $(cat "$T/once.out" "$T/once.err")"
"$PUSHPOOL" runs -c "$C" ls >"$T/ls" 2>&1 || fail "runs ls: $(cat "$T/ls")"
for id in $(cat "$T/ids"); do
	grep "$id" "$T/ls" | grep -Eq 'FAILED|DEAD|CRASHED' ||
		fail "run $id did not fail: $(cat "$T/ls" "$T/once.err")"
done

# Each cloud did create something, so the checks below are not vacuous.
[ "$(stat cloudrun.creates)" -ge 1 ] || fail "no Cloud Run job was created: $(stats)"
stats | grep -q '"aci.creates":{"pp-' || fail "no container group was created: $(stats)"
[ "$(stat RegisterTaskDefinition)" -ge 1 ] || fail "no task definition was registered: $(stats)"
stats | grep -q '"modal_sandbox_creates":{"pp-' || fail "no sandbox was created: $(stats)"

for live in live_jobs live_container_groups live_task_definitions live_tasks \
	live_modal_sandboxes; do
	[ "$(stat $live)" -eq 0 ] ||
		fail "$live is $(stat $live) after the failed runs: $(stats) $(tail -n 20 "$T/once.err")"
done
echo "ok: runs failing after their create leave no live object on any cloud"
