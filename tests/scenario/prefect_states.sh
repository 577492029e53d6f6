#!/bin/sh
# What pushpool reports to Prefect, against the mock's orchestration rules
# (core_policy.py) with a simulated flow in every job reporting its own
# states, as `prefect flow-run execute` does. On Cloud Run and ACI:
#  - a flow that fails but whose process exits 0 stays FAILED;
#  - a container killed with a non-zero exit (an OOM kill) ends CRASHED,
#    which RetryFailedFlows does not retry (it rules RUNNING -> FAILED only);
#  - a flow with retries=1 is retried once in process (run_count 2): it
#    completes on the retry, or fails twice and stays FAILED;
#  - a flow that completes is COMPLETED with run_count 1;
#  - pushpool itself never proposes RUNNING or COMPLETED (the mock counts
#    proposals by type and answer, apart from the simulated flows' own).
set -eu
. "$(pwd)/tests/scenario/prefect_test.inc"
. "$ROOT/tests/scenario/prefect_lib.inc"
POOLS="cloud-run aci"
pf_setup_pools $POOLS

new_run() { # POOL BODY -> flow run id
	eval dep=\$DEP_$(echo "$1" | tr - _)
	pf POST "/deployments/$dep/create_flow_run" "$2" | jq -r .id
}
flow_env() { # PLAN [EXTRA_ENV_JSON]
	printf '{"job_variables":{"env":{"PUSHPOOL_MOCK_FLOW":"%s"%s}}%s}' "$1" "${2:-}" "${3:-}"
}
: >"$T/cases"
for pool in $POOLS; do
	echo "$pool completed $(new_run "$pool" "$(flow_env completed)")" >>"$T/cases"
	echo "$pool failed $(new_run "$pool" "$(flow_env failed)")" >>"$T/cases"
	echo "$pool oom $(new_run "$pool" "$(flow_env completed ',"PUSHPOOL_MOCK_FAIL":"1"' ',"empirical_policy":{"retries":1}')")" >>"$T/cases"
	echo "$pool retry_ok $(new_run "$pool" "$(flow_env fail_once '' ',"empirical_policy":{"retries":1}')")" >>"$T/cases"
	echo "$pool retry_failed $(new_run "$pool" "$(flow_env failed '' ',"empirical_policy":{"retries":1}')")" >>"$T/cases"
done
TOTAL=$(wc -l <"$T/cases")

"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve.log" 2>&1 &
PIDS="$PIDS $!"
# Every run over in the store (the jobs exited) and final on the server.
stored_done() {
	n=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls 2>/dev/null |
		grep -cE 'SUCCEEDED|FAILED|CRASHED' || true)
	[ "$n" = "$TOTAL" ]
}
wait_for 90 stored_done || fail "runs not over in the store: $("$PUSHPOOL" runs -c "$T/pushpool.conf" ls)"
final() { [ "$(pf_count COMPLETED FAILED CRASHED CANCELLED)" = "$TOTAL" ]; }
wait_for 60 final || fail "$(pf_count COMPLETED FAILED CRASHED CANCELLED) of $TOTAL runs final"

pf POST /flow_runs/filter '{"limit":1000}' >"$T/runs.json"
check() { # CASE STATE RUN_COUNT
	while read -r pool case id; do
		[ "$case" = "$1" ] || continue
		got=$(jq -r --arg id "$id" '.[] | select(.id == $id) | "\(.state_type) \(.run_count)"' "$T/runs.json")
		[ "$got" = "$2 $3" ] || fail "$pool $case: $got, want $2 $3"
	done <"$T/cases"
}
check completed COMPLETED 1
check failed FAILED 1
check oom CRASHED 1
check retry_ok COMPLETED 2
check retry_failed FAILED 2

stats >"$T/stats.json"
# pushpool's own proposals by type: PENDING to claim, CRASHED for the
# killed containers; never RUNNING nor COMPLETED.
jq -e '.keyed["prefect.set_state"] | keys | all(test("^(PENDING|CRASHED|CANCELLED):"))' \
	"$T/stats.json" >/dev/null || fail "pushpool proposed $(jq -c '.keyed["prefect.set_state"]' "$T/stats.json")"
crashed=$(jq '.keyed["prefect.set_state"]["CRASHED:ACCEPT"] // 0' "$T/stats.json")
[ "$crashed" = 2 ] || fail "$crashed CRASHED accepted, want 2 (the OOM-killed runs)"
# The flows were retried in process by the server's AwaitingRetry.
retried=$(jq '.keyed["prefect.flow_set_state"]["FAILED:REJECT"] // 0' "$T/stats.json")
[ "$retried" = 4 ] || fail "$retried FAILED proposals turned into AwaitingRetry, want 4"
echo "ok: $TOTAL runs: failed-but-exit-0 stays FAILED, OOM kill CRASHED, retries=1 retried once; pushpool proposed $(jq -c '.keyed["prefect.set_state"]' "$T/stats.json")"
