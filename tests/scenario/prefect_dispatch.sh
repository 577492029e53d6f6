#!/bin/sh
# The Prefect API as the run source, against the mock:
#  200 scheduled flow runs across four push pools (templates from the
#  server), taken by two `serve` processes with separate stores, so only the
#  server's PENDING arbitration and the shared idempotency keys keep them
#  apart. Every run ends COMPLETED (reported by the simulated flow in its
#  job) with infrastructure_pid set, exactly one PENDING accepted, one
#  infrastructure and one remote job per run.
set -eu
. "$(pwd)/tests/scenario/prefect_test.inc"
. "$ROOT/tests/scenario/prefect_lib.inc"
POOLS="cloud-run ecs aci modal"
PER_POOL=50
TOTAL=200
pf_setup_pools $POOLS
for pool in $POOLS; do pf_runs "$pool" $PER_POOL; done
[ "$(pf_count SCHEDULED)" = $TOTAL ] || fail "seeding: $(pf_count SCHEDULED) scheduled runs"

sed "s|^state_dir = .*|state_dir = $T/state2|" "$T/pushpool.conf" >"$T/pushpool2.conf"
mkdir -p "$T/state2"
# The first proposals of each (16 on the wire, the same first runs of the
# same first pool) wait for the other's: those runs are proposed by both
# at once, and the server's arbitration, not a read that already saw the
# other's PENDING, decides them, whichever serve starts first.
curl -fsS -X POST -H 'Content-Type: application/json' \
	-d '{"action":"POST flow_runs/set_state","count":32,"timeout_ms":120000}' \
	"$BASE/prefect/control/barrier" >/dev/null
"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve1.log" 2>&1 &
PIDS="$PIDS $!"
"$PUSHPOOL" serve -c "$T/pushpool2.conf" >"$T/serve2.log" 2>&1 &
PIDS="$PIDS $!"

done_all() { [ "$(pf_count COMPLETED FAILED CRASHED CANCELLED)" = $TOTAL ]; }
wait_for 90 done_all || fail "only $(pf_count COMPLETED FAILED CRASHED CANCELLED) of $TOTAL runs ended"
[ "$(pf_count COMPLETED)" = $TOTAL ] || fail "$(pf_count COMPLETED) of $TOTAL COMPLETED"

# The simulated flows report their own end, which can come before pushpool
# has seen its submission through (ACI's create is asynchronous): the
# infrastructure_pid follows the submission, so wait for it.
nopid() {
	pf POST /flow_runs/filter '{"limit":1000}' >"$T/runs.json"
	nopid=$(jq '[.[] | select(.infrastructure_pid == null or .infrastructure_pid == "")] | length' "$T/runs.json")
	[ "$nopid" = 0 ]
}
wait_for 60 nopid || fail "$nopid runs without infrastructure_pid: $(jq -c '[.[] | select(.infrastructure_pid == null or .infrastructure_pid == "") | .work_pool_name] | group_by(.) | map({(.[0]): length}) | add' "$T/runs.json")"
stats >"$T/stats.json"
jq -e --argjson n $TOTAL '.keyed["prefect.pending_accepted"] | length == $n and all(.[]; . == 1)' \
	"$T/stats.json" >/dev/null || fail "PENDING accepted more than once for some run"
jq -e --argjson n $TOTAL '.keyed["prefect.infrastructure_pid_set"] | length == $n and all(.[]; . == 1)' \
	"$T/stats.json" >/dev/null || fail "a run got two infrastructures"
# One remote job per run, on every cloud.
remote=$(jq '(.counters["cloudrun.creates"] // 0) + (.counters.RunTaskStarted // 0)
	+ ([.keyed["aci.creates"][]?] | add // 0) + ([.keyed.modal_sandbox_creates[]?] | add // 0)' "$T/stats.json")
[ "$remote" = $TOTAL ] || fail "$remote remote jobs for $TOTAL runs"
for p in $PIDS; do kill -TERM "$p"; done
for p in $PIDS; do wait "$p" || fail "serve exited $?"; done
PIDS=
# Each run is in exactly one store, recorded with its Prefect id.
n1=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls | grep -c -- '-' || true)
n2=$("$PUSHPOOL" runs -c "$T/pushpool2.conf" ls | grep -c -- '-' || true)
[ $((n1 + n2)) = $TOTAL ] || fail "stores hold $n1 + $n2 runs, want $TOTAL"
aborted=$(jq '.keyed["prefect.set_state"]["PENDING:ABORT"] // 0' "$T/stats.json")
[ "$(jq '.keyed["prefect.barrier_passed"]["POST flow_runs/set_state"] // 0' "$T/stats.json")" = 32 ] ||
	fail "the two serves' first proposals did not meet: $(jq -c '.keyed | with_entries(select(.key | test("barrier")))' "$T/stats.json")"
[ "$aborted" -ge 16 ] || fail "$aborted PENDING proposals aborted: the serves never competed for a run"
echo "ok: $TOTAL runs COMPLETED once each; stores $n1 + $n2; $aborted PENDING proposals aborted"
