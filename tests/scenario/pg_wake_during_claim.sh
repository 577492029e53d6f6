#!/bin/sh
# A wake-up (runs inserted, NOTIFY) that comes while a pool's own claim is
# out must not be lost when that claim's answer, read under a snapshot
# taken before the insert, comes back empty: the pool is asked again after
# the answer (pool_rt.claim_again, docs/store.md), not at the next timed
# claim, which poll_interval 600 puts 150 s away.
#
# Nothing races. A statement trigger on runs holds the claimer's session
# (the one session that does not LISTEN) while a gate is shut. A NOTIFY
# sent by the test, with nothing due, wakes the dispatcher into an empty
# claim, which the trigger holds after the claim's snapshot was taken.
# One run is then scheduled in each pool (the held claim is one pool's,
# whichever the loop offered first); the test waits for the dispatcher to
# log that the wake-up found a claim out, and only then opens the gate.
# Every run must then be claimed within 60 s: without the fix the held
# pool's run stays SCHEDULED until the timed claim (checked).
DISPATCHER_EXTRA="poll_interval = 600
log_level = debug
status_interval = 600"
. "$(dirname "$0")/../pg-lib.sh"
fail() {
	echo "FAIL: $*"
	psql_q "SELECT pool, state, attempt FROM runs ORDER BY pool"
	grep -v 'DEBUG http' "$T/d1.log" | tail -n 30
	exit 1
}
start_serve d1
wait_serving 60 d1 || exit 1
hold_claimer "BEFORE UPDATE ON runs FOR EACH STATEMENT" || fail "the gate"
psql_q "NOTIFY pushpool_runs" >/dev/null
until_deadline 60 0.05 claim_held || fail "no empty claim waits in the trigger"
schedule_runs 1
asked_again() { grep -q 'its claim is out; asked again after the answer' "$T/d1.log"; }
until_deadline 60 0.05 asked_again || fail "the wake-up did not find the claim out"
open_claimer
claimed() { [ "$(psql_q "SELECT count(*) FROM runs WHERE attempt > 0")" = 4 ]; }
until_deadline 60 0.05 claimed || fail "a run inserted during an empty claim waits"
held=$(sed -n 's/.*pool \([a-z-]*\): its claim is out.*/\1/p' "$T/d1.log" | head -n 1)
echo "pg_wake_during_claim: the wake-up during pool $held's empty claim was kept; 4 runs claimed"
