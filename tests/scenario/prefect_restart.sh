#!/bin/sh
# The Prefect server goes away mid-dispatch and comes back:
#  - the Prefect API runs in its own mock process, with its state in a file;
#    it is killed (SIGKILL) while 80 flow runs are being dispatched and
#    restarted on the same port; every run still ends COMPLETED, with one
#    remote job each, and the store holds each run once;
#  - the Prefect API is not in the clouds' mock, so their jobs' simulated
#    flows cannot reach it: this script plays the flows, reporting RUNNING
#    then COMPLETED for each submitted run (pushpool reports neither);
#  - the modal pool has no pushpool credentials: its template takes them
#    from a Prefect modal-credentials block, resolved through the API (the
#    Modal mock rejects any other token), and the secret never reaches the
#    log.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
T=$(mktemp -d)
MOCK_PID=
PF_PID=
SV=
FLOWS=
cleanup() {
	for p in $FLOWS $SV $PF_PID $MOCK_PID; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*"
	for f in "$T/serve.log" "$T/pf.log" "$T/mock.log"; do [ -f "$f" ] && { echo "== $f"; tail -n 20 "$f"; }; done
	exit 1
}
start_prefect() { # LISTEN
	rm -f "$T/pf-ports"
	PUSHPOOL_MOCK_PREFECT_STATE=$T/prefect-state.json PUSHPOOL_MOCK_PREFECT_KEY=pf-scenario-key-0123456789 \
		"$PUSHPOOL" mock --listen "$1" --port-file "$T/pf-ports" >>"$T/pf.log" 2>&1 &
	PF_PID=$!
	i=0
	until grep -q '^prefect=' "$T/pf-ports" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 600 ] && fail "prefect mock did not start on $1"
		sleep 0.05
	done
}
start_prefect 127.0.0.1:0
PF_BASE=$(sed -n 's/^url=//p' "$T/pf-ports")
PF_PORT=${PF_BASE##*:}

MOCK_RUN_SECONDS=1
. "$ROOT/tests/scenario/prefect_lib.inc"
# Modal credentials only from the block.
sed -i '/^credentials = modal$/d' "$T/pushpool.conf"
"$PUSHPOOL" template default --type modal:push |
	jq '.variables.properties.modal_credentials.default = "{{ prefect.blocks.modal-credentials.scenario }}"' \
	>"$T/modal-template.json"
TEMPLATE_modal=$T/modal-template.json
pf POST /block_documents/ '{"name":"scenario","block_type_slug":"modal-credentials",
	"data":{"token_id":"ak-demo","token_secret":"as-demo-secret"}}' >/dev/null
POOLS="cloud-run ecs aci modal"
TOTAL=80
pf_setup_pools $POOLS
for pool in $POOLS; do pf_runs "$pool" 20; done

"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve.log" 2>&1 &
SV=$!
# The flows: each run with its infrastructure up reports its own states,
# through the outage too (a failed call is tried again on the next round).
play_flows() {
	while :; do
		# One curl a state for all of this round's runs (each URL gets
		# the same POST), not two processes a run.
		urls=$(pf POST /flow_runs/filter '{"limit":1000,"flow_runs":{"state":{"type":{"any_":["PENDING","RUNNING"]}}}}' 2>/dev/null |
			jq -r --arg pf "$PF" '.[] | select(.infrastructure_pid != null) | "\($pf)/flow_runs/\(.id)/set_state"' 2>/dev/null) || true
		if [ -n "$urls" ]; then
			for state in RUNNING COMPLETED; do
				curl -sS -X POST -H "Authorization: Bearer $PF_KEY" -H 'Content-Type: application/json' \
					-d "{\"state\":{\"type\":\"$state\"}}" $urls >/dev/null 2>&1 || true
			done
		fi
		sleep 0.2
	done
}
play_flows &
FLOWS=$!
some_submitted() {
	[ "$(pf POST /flow_runs/filter '{"limit":1000}' | jq '[.[] | select(.infrastructure_pid != null)] | length')" -ge 10 ]
}
wait_for 30 some_submitted || fail "no runs submitted"
lines_at_kill=$(wc -l <"$T/serve.log")
kill -KILL "$PF_PID"
wait "$PF_PID" 2>/dev/null || true
ended_at_kill=$(jq '[.flow_runs[] | select(.state_type == "COMPLETED")] | length' "$T/prefect-state.json")
[ "$ended_at_kill" -lt $TOTAL ] || fail "dispatch was over before the kill"
# Down until serve has met the outage (a warning or error logged after the
# kill), however long that takes on a busy machine.
met_outage() { tail -n +$((lines_at_kill + 1)) "$T/serve.log" | grep -q 'WARN\|ERROR'; }
wait_for 60 met_outage || fail "serve never noticed the Prefect API was down"
start_prefect "127.0.0.1:$PF_PORT"
done_all() { [ "$(pf_count COMPLETED FAILED CRASHED CANCELLED)" = $TOTAL ]; }
wait_for 60 done_all || fail "only $(pf_count COMPLETED FAILED CRASHED CANCELLED) of $TOTAL runs ended"
[ "$(pf_count COMPLETED)" = $TOTAL ] || fail "$(pf_count COMPLETED) of $TOTAL COMPLETED: $(pf POST /flow_runs/filter '{"limit":1000}' | jq -c '[.[] | select(.state_type != "COMPLETED") | .state.message][0:3]')"
all_pids() { [ "$(pf_count_no_pid)" = 0 ]; }
wait_for 30 all_pids || fail "$(pf_count_no_pid) runs without infrastructure_pid"
stats >"$T/stats.json"
remote=$(jq '(.counters["cloudrun.creates"] // 0) + (.counters.RunTaskStarted // 0)
	+ ([.keyed["aci.creates"][]?] | add // 0) + ([.keyed.modal_sandbox_creates[]?] | add // 0)' "$T/stats.json")
[ "$remote" = $TOTAL ] || fail "$remote remote jobs for $TOTAL runs"
# The played flows end before their jobs do: wait for the jobs' exits.
jobs_done() {
	n=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls --state SUCCEEDED 2>/dev/null | grep -c -- '-' || true)
	[ "$n" = $TOTAL ]
}
wait_for 60 jobs_done || fail "$n of $TOTAL runs SUCCEEDED in the store"
kill -TERM "$SV"
wait "$SV" || fail "serve exited $? on SIGTERM"
SV=
! grep -q 'as-demo-secret' "$T/serve.log" || fail "the block's secret reached the log"
echo "ok: Prefect killed with $ended_at_kill of $TOTAL runs done; all COMPLETED once; modal via block"
