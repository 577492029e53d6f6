#!/bin/sh
# Runs/s end to end (scheduled -> SUCCEEDED against the mock, lease 5 s)
# with 1, 2 and 3 `serve` processes on one PostgreSQL store. PG_BENCH_RUNS
# runs per pool and round (4 pools); the mock's jobs provision in 0.1 s and
# run 0.3 s, so this measures the dispatchers and the store, not the jobs.
# Usage: PUSHPOOL=build/pushpool sh tests/bench/pg_dispatchers.sh
DISPATCHER_EXTRA="lease_seconds = 5"
. "$(dirname "$0")/../pg-lib.sh"
PER_POOL=${PG_BENCH_RUNS:-250}
TOTAL=$((PER_POOL * 4))
for k in 1 2 3; do
	psql_q "TRUNCATE runs, run_events"
	curl -fsS -X POST "$BASE/control/reset" >/dev/null
	schedule_runs "$PER_POOL"
	start=$(date +%s%N)
	i=1
	while [ $i -le $k ]; do
		start_serve "bench$k-$i"
		i=$((i + 1))
	done
	wait_all_terminal $((120 + TOTAL / 10))
	ms=$((($(date +%s%N) - start) / 1000000))
	stop_serves
	ok=$(psql_q "SELECT count(*) FROM runs WHERE state = 'SUCCEEDED'")
	echo "pg_dispatchers: $k dispatcher(s): $TOTAL runs in $ms ms: $((TOTAL * 1000 / ms)) runs/s ($ok SUCCEEDED)"
done
