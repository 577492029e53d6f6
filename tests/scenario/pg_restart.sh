#!/bin/sh
# The PostgreSQL server is restarted in the middle of a dispatch by three
# `serve` processes, and later stopped until each dispatcher has been
# refused by it: the dispatchers stay up, reconnect with backoff, and every
# run ends SUCCEEDED with exactly one remote object (mock counters):
# nothing lost, nothing doubled.
DISPATCHER_EXTRA="lease_seconds = 5"
. "$(dirname "$0")/../pg-lib.sh"
PER_POOL=${PG_RUNS:-40}
TOTAL=$((PER_POOL * 4))
schedule_runs "$PER_POOL"
start_serve d1
start_serve d2
start_serve d3
wait_serving 60 d1 d2 d3
wait_for 60 $((TOTAL / 5)) "SELECT count(*) FROM runs WHERE state <> 'SCHEDULED'"
sh "$HERE/tests/pg-env.sh" restart "$PGDIR"
wait_for 60 $((TOTAL / 2)) "SELECT count(*) FROM runs WHERE state IN ('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD')"
# refused NAME: how often dispatcher NAME found the server not listening.
refused() { grep -c 'Connection refused' "$T/$1.log" || true; }
before=$(for d in d1 d2 d3; do refused $d; done)
sh "$HERE/tests/pg-env.sh" down "$PGDIR"
# Down until each dispatcher has tried the store and been refused, rather
# than for a time a busy machine may not give them.
end=$(($(date +%s) + 60))
for d in d1 d2 d3; do
	was=$(echo "$before" | sed -n "${d#d}p")
	while [ "$(refused $d)" -le "$was" ]; do
		[ "$(date +%s)" -lt "$end" ] || { echo "FAIL: $d never found the store down"; tail -n 20 "$T/$d.log"; dump_serves; exit 1; }
		sleep 0.05
	done
done
sh "$HERE/tests/pg-env.sh" up "$PGDIR"
wait_all_terminal 80
mock_stats >"$T/stats.json"
for d in d1 d2 d3; do
	kill -0 "$(cat "$T/$d.pid")" 2>/dev/null || { echo "FAIL: $d exited"; tail -n 20 "$T/$d.log"; exit 1; }
done
stop_serves
bad=$(psql_q "SELECT count(*) FROM runs WHERE state <> 'SUCCEEDED'")
[ "$bad" = 0 ] || { echo "FAIL: $bad run(s) not SUCCEEDED"; psql_q "SELECT state, last_error FROM runs WHERE state <> 'SUCCEEDED' LIMIT 5"; exit 1; }
check_one_object_per_run "$PER_POOL" "$T/stats.json"
reconnects=$(cat "$T"/d?.log | grep -c 'reconnected after' || true)
[ "$reconnects" -ge 3 ] || { echo "FAIL: only $reconnects reconnection(s) logged"; exit 1; }
echo "$TOTAL runs across a server restart and an outage every dispatcher saw: all SUCCEEDED, one remote object each," \
	"$reconnects reconnection(s)"
