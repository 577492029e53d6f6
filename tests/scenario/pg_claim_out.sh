#!/bin/sh
# A claim sent without waiting (PostgreSQL's claim_send, docs/store.md) and
# still unanswered when the dispatcher stops: the stop takes its answer
# first and gives its runs back with the runs claimed ahead (SCHEDULED, no
# lease, the try the claim counted withdrawn), so none is left SUBMITTING
# under a lease nobody renews, and none is sent.
#
# The claim is held, not raced: a trigger on owner_leases, which a claim
# that leased runs writes last (the owner's lease row), holds the
# claimer's session (the one session of the store that does not LISTEN)
# until the test opens a gate, so the claim leases the runs due (one to
# three: the wake-up may come with the first insert) and waits. The test
# stops the dispatcher, waits for its "stopping" line (after it the loop
# starts nothing), and only then opens the gate. Every wait is on a state
# (the server's sessions, the log, the store), none on the clock, and the
# claim is not held by a lock, which lock_timeout would end.
DISPATCHER_EXTRA="status_interval = 600
grace_seconds = 0.2
sweep_interval = 0"
. "$(dirname "$0")/../pg-lib.sh"
fail() {
	echo "FAIL: $*"
	tail -n 20 "$T/d1.log"
	exit 1
}
start_serve d1
wait_serving 60 d1 || exit 1
hold_claimer "BEFORE INSERT ON owner_leases FOR EACH ROW" || fail "the gate"
"$PUSHPOOL" schedule -c "$CONF" -p ecs --count 3 >/dev/null
# The claim (woken by the insert's NOTIFY) leased them and sleeps in the
# trigger.
until_deadline 60 0.05 claim_held || fail "no claim waits"
kill -INT "$(cat "$T/d1.pid")"
stopping() { grep -q 'stopping: no new claims' "$T/d1.log"; }
until_deadline 60 0.05 stopping || fail "d1 did not stop"
open_claimer
wait "$(cat "$T/d1.pid")" || fail "d1 exited $?"
SERVE_PIDS=
got=$(psql_q "SELECT state || ',' || COALESCE(lease_owner, '-') || ',' || attempt, count(*)
	FROM runs GROUP BY 1")
[ "$got" = "SCHEDULED,-,0|3" ] || fail "runs after the stop: $got"
# The claim took one or more of them (the wake-up may come with the first
# insert): each of those has its intent's event and then the event of its
# release, the others neither.
taken=$(psql_q "SELECT count(*) FROM run_events WHERE message = 'submitting (try 1)'")
[ "$taken" -ge 1 ] || fail "the claim took nothing: $(psql_q "SELECT run_id, state, message
	FROM run_events")"
[ "$(psql_q "SELECT count(*) FROM run_events e WHERE message = 'released before submission'
	AND EXISTS (SELECT 1 FROM run_events i WHERE i.run_id = e.run_id AND i.seq < e.seq
	AND i.message = 'submitting (try 1)')")" = "$taken" ] ||
	fail "not given back: $(psql_q "SELECT run_id, state, message FROM run_events")"
sent=$(mock_stats | jq -r '[.keyed.requests // {} | to_entries[] |
	select(.key | test("RunTask")) | .value] | add // 0')
[ "$sent" = 0 ] || fail "$sent RunTask(s) sent"
echo "pg_claim_out: a claim unanswered at the stop: its $taken run(s) given back, none sent"
