#!/bin/sh
# A dispatcher whose leases lapse while it watches its runs (SIGSTOPped past
# its lease) must not act on them again once it resumes: another dispatcher
# has claimed and finished them. Its first renewal after the stall comes too
# late, so it confirms each run's fence before any request and drops the
# runs claimed again: the mock sees no request at all from it after it
# resumes (its status checks would otherwise go out), and the store keeps
# the new owner's outcome.
DISPATCHER_EXTRA="lease_seconds = 5
status_interval = 0.5"
# Long enough that every run is still running once the last one is
# submitted: the mock's realistic clouds take seconds to accept some (a 3 s
# Modal image build, ACI's async creation, a reconciling Cloud Run job).
MOCK_RUN_SECONDS=8
. "$(dirname "$0")/../pg-lib.sh"
PER_POOL=5
TOTAL=$((PER_POOL * 4))
schedule_runs "$PER_POOL"
start_serve stale
# Every run submitted by "stale" and being watched.
wait_for 60 "$TOTAL" "SELECT count(*) FROM runs WHERE state IN ('SUBMITTED','RUNNING') AND lease_owner = 'stale'"
kill -STOP "$(cat "$T/stale.pid")"
start_serve rescuer
wait_all_terminal 60
# Only the stale dispatcher may talk to the mock from here on.
kill "$(cat "$T/rescuer.pid")"
wait "$(cat "$T/rescuer.pid")" 2>/dev/null || true
SERVE_PIDS=$(cat "$T/stale.pid")
# Every API request the mock counted, except the test's own /control calls.
requests() {
	jq '[.keyed.requests // {} | to_entries[] | select(.key | startswith("control:") | not)
		| .value] | add // 0' "$1"
}
mock_stats >"$T/before.json"
before=$(requests "$T/before.json")
kill -CONT "$(cat "$T/stale.pid")"
# A run is dropped by the late renewal's check ("claimed again while ours
# lapsed"), or, when an operation of it was under way at the stop (slow
# cloud operations: ACI's async delete, ECS's MISSING window), by that
# operation's own fence check ("fence N is stale"): runs are counted, not
# lines.
wait_dropped 60 stale "$TOTAL" || exit 1
mock_stats >"$T/after.json"
after=$(requests "$T/after.json")
stop_serves
[ "$before" = "$after" ] || {
	echo "FAIL: the resumed dispatcher sent $((after - before)) request(s) for runs it no longer owns"
	jq -n --slurpfile b "$T/before.json" --slurpfile a "$T/after.json" \
		'$a[0].keyed.requests | to_entries[] | select(.value != ($b[0].keyed.requests[.key] // 0))'
	tail -n 20 "$T/stale.log"
	exit 1
}
bad=$(psql_q "SELECT count(*) FROM runs WHERE state <> 'SUCCEEDED'")
[ "$bad" = 0 ] || { echo "FAIL: $bad run(s) not SUCCEEDED"; exit 1; }
echo "$TOTAL runs watched by a dispatcher stopped past its lease: the other finished them," \
	"and once resumed it sent 0 requests and dropped all $TOTAL"
