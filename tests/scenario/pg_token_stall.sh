#!/bin/sh
# A dispatcher stopped (SIGSTOP) past its lease while it fetches the token
# for its first Cloud Run create, and resumed only after another dispatcher
# has created, run and deleted every one of its jobs, sends no create: the
# request keeps the deadline it had before the fetch. (pg_dispatch.sh's
# 1-in-10 "61 creations for 60 runs" under load was this interleaving: the
# create got a fresh deadline when the fetch ended and brought the deleted
# job back.) The mock holds the token answer, so the stop lands in the
# fetch on any machine.
DISPATCHER_EXTRA="lease_seconds = 5"
. "$(dirname "$0")/../pg-lib.sh"
N=8
PORT=$(echo "$BASE" | sed 's|.*:||')
faults() { curl -fsS -X POST "$BASE/control/faults" -d "$1" >/dev/null; }
faults '{"api":"oauth","token_delay_ms":6000}'
"$PUSHPOOL" schedule -c "$CONF" -p cloud-run --count "$N" --name token-stall >/dev/null
start_serve slow
wait_for 30 "$N" "SELECT count(*) FROM runs WHERE state = 'SUBMITTING' AND lease_owner = 'slow'"
# Its only peer is the mock: a connection to it is the token fetch (no
# create can connect before the token is applied).
pid=$(cat "$T/slow.pid")
end=$(($(date +%s) + 30))
until ss -Htnp state established "( dport = :$PORT )" | grep -q "pid=$pid,"; do
	[ "$(date +%s)" -lt "$end" ] || { echo "FAIL: no token fetch from the dispatcher"; tail -n 20 "$T/slow.log"; exit 1; }
	sleep 0.05
done
kill -STOP "$pid"
faults '{"api":"oauth","token_delay_ms":0}'
start_serve rescuer
wait_all_terminal 90
mock_stats >"$T/before.json"
kill -CONT "$pid"
# Resumed, it drops every run it held (after sending the create, on the
# build before the fix); then the mock's counters are final.
end=$(($(date +%s) + 60))
while [ "$(grep -c 'leaving it to its new owner' "$T/slow.log" || true)" -lt "$N" ]; do
	[ "$(date +%s)" -lt "$end" ] || { echo "FAIL: the resumed dispatcher did not drop its $N runs"; tail -n 20 "$T/slow.log"; exit 1; }
	sleep 0.1
done
mock_stats >"$T/after.json"
stop_serves
creates() { jq -r '.counters["cloudrun.creates"] // 0' "$1"; }
b=$(creates "$T/before.json")
a=$(creates "$T/after.json")
[ "$b" = "$N" ] || { echo "FAIL: $b Cloud Run job creations before resuming, want $N"; exit 1; }
[ "$a" = "$b" ] || {
	echo "FAIL: the resumed dispatcher created $((a - b)) job(s) another had already run and deleted"
	grep -i 'create\|lapsed\|not sent' "$T/slow.log" | tail -n 10
	exit 1
}
live=$(jq -r '.live.live_jobs' "$T/after.json")
[ "$live" = 0 ] || { echo "FAIL: $live Cloud Run job(s) left behind"; exit 1; }
grep -q 'not sent: its deadline passed while credentials were applied' "$T/slow.log" ||
	{ echo "FAIL: the held-back create is not in the log"; tail -n 20 "$T/slow.log"; exit 1; }
bad=$(psql_q "SELECT count(*) FROM runs WHERE state <> 'SUCCEEDED'")
[ "$bad" = 0 ] || { echo "FAIL: $bad run(s) not SUCCEEDED"; exit 1; }
echo "stopped during its token fetch, resumed after the rescuer finished all $N runs:" \
	"0 creates sent, $N runs dropped, no job left behind"
