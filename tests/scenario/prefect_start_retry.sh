#!/bin/sh
# A start retry as Prefect sees it (issue 25), against the mock's Prefect
# API and its orchestration rules: the first job of each flow run fails to
# start (the mock's start_failures fault: ECS CannotPullContainerError, ACI's
# failed pull), pushpool starts it again as a new remote object, and the
# flow run, PENDING all along, runs once in the second job and is COMPLETED
# with run_count 1. Its infrastructure_pid names the second job; pushpool
# proposed nothing but PENDING (no CRASHED for the failed start).
set -eu
. "$(pwd)/tests/scenario/prefect_test.inc"
. "$ROOT/tests/scenario/prefect_lib.inc"
POOLS="ecs aci"
pf_setup_pools $POOLS
sed -i '/^\[pool /a start_retries = 1\nstart_retry_backoff = 0.2' "$T/pushpool.conf"
curl -fsS -X POST -d '[{"api":"ecs","start_failures":1},{"api":"aci","start_failures":1}]' \
	"$BASE/control/faults" >/dev/null
: >"$T/cases"
for pool in $POOLS; do
	eval dep=\$DEP_$pool
	id=$(pf POST "/deployments/$dep/create_flow_run" '{"job_variables":{"env":{"PUSHPOOL_MOCK_FLOW":"completed"}}}' |
		jq -r .id)
	echo "$pool $id" >>"$T/cases"
done
"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve.log" 2>&1 &
PIDS="$PIDS $!"
stored_done() {
	[ "$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls 2>/dev/null | grep -c SUCCEEDED || true)" = 2 ]
}
wait_for 90 stored_done || fail "runs not SUCCEEDED in the store: $("$PUSHPOOL" runs -c "$T/pushpool.conf" ls)"
final() { [ "$(pf_count COMPLETED FAILED CRASHED CANCELLED)" = 2 ]; }
wait_for 60 final || fail "$(pf_count COMPLETED FAILED CRASHED CANCELLED) of 2 flow runs final"
pf POST /flow_runs/filter '{"limit":100}' >"$T/runs.json"
while read -r pool id; do
	got=$(jq -r --arg id "$id" '.[] | select(.id == $id) | "\(.state_type) \(.run_count)"' "$T/runs.json")
	[ "$got" = "COMPLETED 1" ] || fail "$pool: flow run $got, want COMPLETED 1"
	run=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls | awk -v p="$pool" '$2 == p { print $1 }')
	"$PUSHPOOL" runs -c "$T/pushpool.conf" show "$run" >"$T/show"
	second=$(sed -n '/^start attempts:/,/^events:/p' "$T/show" | awk '$1 == 2 { print $2 }')
	[ -n "$second" ] || fail "$pool: no second attempt: $(cat "$T/show")"
	# Sent without the loop waiting for its answer: waited for.
	pid_of() { pf GET "/flow_runs/$id" | jq -r .infrastructure_pid; }
	second_reported() { [ "$(pid_of)" = "$second" ]; }
	wait_for 30 second_reported ||
		fail "$pool: infrastructure_pid $(pid_of), want the second job $second"
done <"$T/cases"
stats >"$T/stats.json"
jq -e '.keyed["prefect.set_state"] | keys | all(test("^PENDING:"))' "$T/stats.json" >/dev/null ||
	fail "pushpool proposed $(jq -c '.keyed["prefect.set_state"]' "$T/stats.json")"
[ "$(jq -r '.keyed.injected["ecs.start_failure"]' "$T/stats.json")" = 1 ] &&
	[ "$(jq -r '.keyed.injected["aci.start_failure"]' "$T/stats.json")" = 1 ] ||
	fail "starts failed: $(jq -c .keyed.injected "$T/stats.json")"
echo "ok: a failed start retried under Prefect: COMPLETED with run_count 1, infrastructure_pid the second job, only PENDING proposed"
