#!/bin/sh
# Three `serve` processes share one PostgreSQL store and dispatch
# PG_RUNS runs per pool (4 pools) against the mock; one of them is
# SIGSTOPped for longer than its lease midway and then resumed. Every run
# must end SUCCEEDED with exactly one remote object each (mock counters):
# no duplicates, none lost. `make pg-soak` runs it with 750 per pool (3,000).
DISPATCHER_EXTRA="lease_seconds = 5"
. "$(dirname "$0")/../pg-lib.sh"
PER_POOL=${PG_RUNS:-60}
TOTAL=$((PER_POOL * 4))
schedule_runs "$PER_POOL"
start_serve d1
start_serve d2
start_serve d3
# Stop d2 in the middle of submissions (the hard case: its requests must
# not go out once its lease may be gone); hold it until its lease has
# lapsed and the others have claimed every run it held unfinished.
wait_for 60 8 "SELECT count(*) FROM runs WHERE state = 'SUBMITTING' AND lease_owner = 'd2'"
kill -STOP "$(cat "$T/d2.pid")"
held=$(psql_q "SELECT string_agg(quote_literal(id), ',') FROM runs WHERE lease_owner = 'd2'
	AND state NOT IN ('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD')")
wait_for 60 "$(echo "$held" | tr ',' '\n' | wc -l)" \
	"SELECT count(*) FROM runs WHERE id IN ($held) AND lease_owner IS DISTINCT FROM 'd2'"
kill -CONT "$(cat "$T/d2.pid")"
wait_all_terminal $((60 + TOTAL / 10))
mock_stats >"$T/stats.json"
stop_serves
bad=$(psql_q "SELECT count(*) FROM runs WHERE state <> 'SUCCEEDED'")
[ "$bad" = 0 ] || { echo "FAIL: $bad run(s) not SUCCEEDED"; psql_q "SELECT state, last_error FROM runs WHERE state <> 'SUCCEEDED' LIMIT 5"; exit 1; }
check_one_object_per_run "$PER_POOL" "$T/stats.json"
by=$(for d in d1 d2 d3; do printf '%s=%s ' $d "$(grep -c 'submitted as' "$T/$d.log" || true)"; done)
echo "$TOTAL runs by 3 dispatchers ($by), one stopped past its lease: all SUCCEEDED, one remote object each"
