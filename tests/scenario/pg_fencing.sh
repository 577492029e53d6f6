#!/bin/sh
# A dispatcher paused past its lease (SIGSTOP) in the middle of submitting
# loses its runs to another one, which reconciles them with the provider by
# idempotency key. Once resumed, the stale one sends no submission for the
# runs it no longer owns (mock counters unchanged across its resumption),
# and its late writes are rejected by the fencing check: the store keeps
# the new owner's outcome for every run.
DISPATCHER_EXTRA="lease_seconds = 5"
. "$(dirname "$0")/../pg-lib.sh"
PER_POOL=20
start_serve stale
# One run per pool first: the tokens are cached before the stall, so no
# blocking token fetch is under way when it comes.
schedule_runs 1
wait_for 30 4 "SELECT count(*) FROM runs WHERE state NOT IN ('SCHEDULED','SUBMITTING')"
# Stop it in the middle of submitting. The mock holds every ECS answer
# for 3 s, so the stale dispatcher's RunTasks stay in flight (their runs
# SUBMITTING) however fast or slow the machine is: a state the test
# makes, not one it hopes to catch. It stops the dispatcher once six of
# the new ECS runs have gone out (their "submitting" events, which stay):
# a count that only grows, where sampling the runs SUBMITTING at one
# moment could miss the 3 s window on a machine busy enough (it did once,
# under make check's ASan pass beside two make test). The latency goes
# before the rescuer starts; what the stale one sent before its stop is
# answered 3 s after it arrived, long before the rescuer can claim (its
# lease lasts 5 s).
faults() { curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" "$BASE/control/faults" >/dev/null; }
faults '{"api":"ecs","latency_ms":3000}'
schedule_runs "$PER_POOL"
wait_for 30 7 "SELECT count(DISTINCT e.run_id) FROM run_events e JOIN runs r ON r.id = e.run_id
	WHERE r.pool = 'ecs' AND e.message LIKE 'submitting (try %'"
kill -STOP "$(cat "$T/stale.pid")"
faults '{"api":"ecs","latency_ms":0}'
held=$(psql_q "SELECT count(*) FROM runs WHERE lease_owner = 'stale'")
start_serve rescuer
wait_all_terminal 60
mock_stats >"$T/before.json"
kill -CONT "$(cat "$T/stale.pid")"
wait_dropped 60 stale "$held" || exit 1
mock_stats >"$T/after.json"
stop_serves
# Every submission the mock can see: HTTP creates and runs, Modal sandboxes.
submissions() {
	jq -r '([.keyed.requests // {} | to_entries[] | select(.key |
		test("CreateJob|RunJob|RunTask|RegisterTaskDefinition|ContainerGroups_CreateOrUpdate")) | .value]
		+ [.keyed.modal_sandbox_creates // {} | .[]]) | add // 0' "$1"
}
b=$(submissions "$T/before.json")
a=$(submissions "$T/after.json")
[ "$b" = "$a" ] || { echo "FAIL: the resumed dispatcher sent $((a - b)) submission(s) for runs it no longer owns"; tail -n 20 "$T/stale.log"; exit 1; }
check_one_object_per_run $((PER_POOL + 1)) "$T/after.json"
bad=$(psql_q "SELECT count(*) FROM runs WHERE state <> 'SUCCEEDED'")
[ "$bad" = 0 ] || { echo "FAIL: $bad run(s) not SUCCEEDED: a stale write got through"; exit 1; }
rejected=$(grep -c 'lease lost (fence' "$T/stale.log" || true)
[ "$rejected" -gt 0 ] || { echo "FAIL: the stale dispatcher's writes were not rejected"; tail -n 20 "$T/stale.log"; exit 1; }
rescued=$(psql_q "SELECT count(DISTINCT run_id) FROM run_events WHERE message LIKE 'submitting (try 2)'")
echo "stale dispatcher held $held run(s) when stopped; the rescuer finished all $((PER_POOL * 4 + 4))" \
	"($rescued resubmitted by key); after resuming: 0 submissions, $rejected write(s) rejected by fencing"
