#!/bin/sh
# A claim the server commits after its dispatcher lost the connection (the
# answer never comes back) leased runs to that dispatcher all the same; its
# renewals, one row an owner, would hold them while it lives, unstarted
# (pg_restart.sh found 9 such runs under a busy `make check`). A failed
# claim makes the renewals that follow look for runs leased to the
# dispatcher that it does not know, and release them (docs/store.md,
# "Owner leases"): every run must end SUCCEEDED, and those the lost claim
# took carry the release's event.
#
# Nothing races. A statement trigger on runs holds the claimer's session
# (the one that does not LISTEN) in the server while a gate is shut. The
# test stops the dispatcher (SIGSTOP), opens the gate and waits until the
# server has committed the claim (its runs leased to d1, their tries'
# intents written) and sent its answer into the dispatcher's socket, then
# destroys the dispatcher's end of that connection (ss -K, which drops what
# it had not read) and lets the dispatcher go on: it finds its claim
# failed, while the store has the runs leased to it.
# No timed claims (poll_interval): the held claim is the one the runs'
# insert wakes, whose snapshot has them. /metrics counts the releases.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DISPATCHER_EXTRA="lease_seconds = 5
poll_interval = 600
log_level = debug
metrics_listen = 127.0.0.1:$PORT"
. "$(dirname "$0")/../pg-lib.sh"
fail() {
	echo "FAIL: $*"
	psql_q "SELECT client_port, state, wait_event, left(query, 40) FROM pg_stat_activity WHERE application_name = 'pushpool'"
	psql_q "SELECT r.id, r.pool, r.state, r.attempt, r.lease_owner FROM runs r ORDER BY pool"
	psql_q "SELECT run_id, state, message FROM run_events ORDER BY run_id, seq" | tail -n 24
	grep -v 'DEBUG http' "$T/d1.log" | tail -n 30
	exit 1
}
start_serve d1
wait_serving 60 d1 || exit 1
# The start's claims answered first: one held by the gate would be one
# whose snapshot predates the runs.
answered() { grep -q 'DEBUG claim [0-9]*: pool .*, answered' "$T/d1.log"; }
until_deadline 60 0.05 answered || fail "no claim answered"
# The runs are all in before the dispatcher claims again (it is stopped
# meanwhile): the claim the gate holds sees them, whichever pool it is for.
pid=$(cat "$T/d1.pid")
kill -STOP "$pid"
hold_claimer "BEFORE UPDATE ON runs FOR EACH STATEMENT" || { kill -CONT "$pid"; fail "the gate"; }
schedule_runs 2
kill -CONT "$pid"
until_deadline 60 0.05 claim_held || fail "no claim waits in the trigger"
port=$(psql_q "SELECT client_port FROM pg_stat_activity WHERE application_name = 'pushpool'
	AND wait_event = 'PgSleep'")
[ -n "$port" ] || fail "the held claim's session has no client port"
kill -STOP "$pid"
open_claimer
# Committed, and the answer written: the session is idle again.
committed() {
	[ "$(psql_q "SELECT state FROM pg_stat_activity WHERE client_port = $port")" = idle ] &&
		[ "$(psql_q "SELECT count(*) FROM runs WHERE lease_owner = 'd1' AND attempt > 0")" -gt 0 ]
}
until_deadline 60 0.05 committed || { kill -CONT "$pid"; fail "the held claim (port $port) was not committed"; }
leased=$(psql_q "SELECT count(*) FROM runs WHERE lease_owner = 'd1' AND attempt > 0")
# The dispatcher's end: its local port is the session's client port.
killed=$(ss -K -Htn "( sport = :$port )" 2>&1) || { kill -CONT "$pid"; fail "ss -K: $killed"; }
kill -CONT "$pid"
echo "$killed" | grep -q ":$port" || fail "ss -K destroyed no socket on port $port: $killed"
claim_failed() { grep -q 'WARN claim for pool .* failed' "$T/d1.log"; }
until_deadline 60 0.05 claim_failed || fail "the dispatcher did not see its claim fail"
wait_all_terminal 60 || fail "runs left"
done_ok=$(psql_q "SELECT count(*) FROM runs WHERE state = 'SUCCEEDED'")
[ "$done_ok" = 8 ] || fail "$done_ok of 8 runs SUCCEEDED"
event="released: leased to this dispatcher by a claim whose answer was lost"
lost=$(psql_q "SELECT count(DISTINCT run_id) FROM run_events WHERE message = '$event'")
[ "$lost" -ge 1 ] || fail "no run was released as the lost claim's"
grep -q 'WARN released [0-9]* run(s) leased to us by a claim whose answer was lost' "$T/d1.log" ||
	fail "the dispatcher did not say it released them"
counted=$(curl -fsS "http://127.0.0.1:$PORT/metrics" |
	sed -n 's/^pushpool_lost_claim_releases_total //p')
[ "$counted" = "$lost" ] || fail "/metrics counts $counted lost claim release(s), the store $lost"
echo "pg_claim_lost: the lost claim leased $leased run(s); $lost released and run again; 8 SUCCEEDED"
