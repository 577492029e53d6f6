#!/bin/sh
# serve with the Prefect source commits its store writes in turns (group
# commit) and never calls the Prefect API with a turn open: while its
# report of a submission waits in the server, the store's write lock is
# free for others, and the SUBMITTED state it reports is already committed
# (readable from another connection); and its leases are renewed while it
# waits (a slow or silent server must not let them lapse). The mock holds
# serve's PATCH of infrastructure_pid at a barrier, so the checks run while
# serve is provably inside that call.
set -eu
. "$(pwd)/tests/scenario/prefect_test.inc"
MOCK_RUN_SECONDS=3600 DISPATCHER_EXTRA="lease_seconds = 5"
. "$ROOT/tests/scenario/prefect_lib.inc"
DB=$T/state/pushpool.db
pf_setup_pools ecs
pf_runs ecs 1
"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve1.log" 2>&1 &
PIDS="$PIDS $!"
pids() { pf POST /flow_runs/filter '{"limit":1000}' | jq '[.[] | select(.infrastructure_pid)] | length'; }
one_pid() { [ "$(pids)" = 1 ]; }
wait_for 60 one_pid || fail "the first run's infrastructure_pid never came"
first=$(pf POST /flow_runs/filter '{"limit":1000}' | jq -c '.[0] | {id, infrastructure_pid}')

# The next run's report is held in the server until a second PATCH comes.
curl -fsS -X POST -H 'Content-Type: application/json' \
	-d '{"action":"PATCH flow_runs","count":2,"timeout_ms":120000}' \
	"$BASE/prefect/control/barrier" >/dev/null
pf_runs ecs 1
held() { [ "$(stats | jq '.keyed["prefect.barrier_held"]["PATCH flow_runs"] // 0')" = 1 ]; }
wait_for 60 held || fail "serve's PATCH never reached the barrier"
sqlite3 -cmd ".timeout 0" "$DB" "BEGIN IMMEDIATE; ROLLBACK;" >/dev/null 2>"$T/lock.err" ||
	fail "the store's write lock is held while serve waits on Prefect: $(cat "$T/lock.err")"
committed=$(sqlite3 -cmd ".timeout 5000" "$DB" \
	"SELECT count(DISTINCT run_id) FROM run_events WHERE state = 'SUBMITTED'")
[ "$committed" = 2 ] ||
	fail "$committed runs SUBMITTED in the store while the second run's report is upstream"
# A renewal is due every third of the 5 s lease, the wait or not.
expires() { sqlite3 -cmd ".timeout 5000" "$DB" "SELECT max(expires) FROM owner_leases"; }
before=$(expires)
renewed() { [ "$(expires)" -gt "$before" ]; }
wait_for 30 renewed || fail "no lease renewal while serve waited on Prefect (expires $before)"
[ "$(stats | jq '.keyed["prefect.barrier_passed"]["PATCH flow_runs"] // 0')" = 0 ] ||
	fail "the held PATCH went through before the renewal was seen"

# A second PATCH (the first run's own pid again) lets both through.
pf PATCH "/flow_runs/$(echo "$first" | jq -r .id)" \
	"$(echo "$first" | jq -c '{infrastructure_pid}')" >/dev/null
two_pids() { [ "$(pids)" = 2 ]; }
wait_for 60 two_pids || fail "the second run's infrastructure_pid never came"
kill -TERM $PIDS
wait $PIDS || fail "serve exited $?"
PIDS=
echo "ok: while serve's report waited in Prefect, the store was free, held what it reported, and its leases were renewed"
