#!/bin/sh
# Reruns and cancellations as Prefect makes them, on Cloud Run with the
# mock's simulated flows:
#  - a flow run that failed (exit 0, the flow's own FAILED) is retried from
#    the UI (a forced AwaitingRetry, a SCHEDULED state): pushpool claims it
#    again as a new attempt, with its own remote job (pp-<id>-2), its
#    current job variables, and never the old outcome; the rerun completes
#    (run_count 2, two PENDING claims accepted, two Cloud Run jobs);
#  - a flow that paused (suspended: its process exited 0) and is resumed
#    (Scheduled "Resuming", as resume_flow_run proposes for a suspended run)
#    is claimed again and runs to COMPLETED;
#  - a cancellation the flow finishes first (CANCELLING then CANCELLED by
#    the flow's supervisor while pushpool was not looking) still cancels
#    the remote job, and the flow's CANCELLED stands.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
T=$(mktemp -d)
MOCK_PID=
SV=
cleanup() {
	[ -n "$SV" ] && kill -CONT "$SV" 2>/dev/null
	for p in $SV $MOCK_PID; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*"
	for f in "$T/serve.log" "$T/mock.log"; do [ -f "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
	exit 1
}
. "$ROOT/tests/scenario/prefect_lib.inc"
pf_setup_pools cloud-run
clock() { curl -fsS -X POST -d "$1" "$BASE/control/clock" >/dev/null || fail "clock $1"; }
state_of() { pf GET "/flow_runs/$1" | jq -r .state_type; }
stored() { # ID: the run's state in the store
	"$PUSHPOOL" runs -c "$T/pushpool.conf" show "$1" 2>/dev/null | sed -n 's/^state: *//p'
}
is() { [ "$("$1" "$2")" = "$3" ]; }
new_run() { pf POST "/deployments/$DEP_cloud_run/create_flow_run" "$1" | jq -r .id; }

"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve.log" 2>&1 &
SV=$!

# ---- a retry from the UI of a finished run ----
R=$(new_run '{"job_variables":{"env":{"PUSHPOOL_MOCK_FLOW":"failed"}}}')
wait_for 30 is state_of "$R" FAILED || fail "first attempt: $(state_of "$R")"
wait_for 30 is stored "$R" SUCCEEDED || fail "first attempt in the store: $(stored "$R")"
# Fixed, then retried from the UI: Prefect's UI proposes a forced
# AwaitingRetry (a SCHEDULED state) on the finished run.
pf PATCH "/flow_runs/$R" '{"job_variables":{"env":{"PUSHPOOL_MOCK_FLOW":"completed"}}}' >/dev/null
pf POST "/flow_runs/$R/set_state" \
	'{"state":{"type":"SCHEDULED","name":"AwaitingRetry","message":"Retry from the UI"},"force":true}' >/dev/null
wait_for 30 is state_of "$R" COMPLETED || fail "rerun: $(state_of "$R")"
reruns() { [ "$("$PUSHPOOL" runs -c "$T/pushpool.conf" show "$R" | sed -n 's/^reruns: *//p')" = 1 ]; }
wait_for 30 reruns || fail "store: $("$PUSHPOOL" runs -c "$T/pushpool.conf" show "$R")"
wait_for 30 is stored "$R" SUCCEEDED || fail "rerun in the store: $(stored "$R")"
hex=$(echo "$R" | tr -d -)
"$PUSHPOOL" runs -c "$T/pushpool.conf" show "$R" >"$T/show.txt"
grep -q "^idempotency: *$R-2\$" "$T/show.txt" || fail "rerun's key: $(cat "$T/show.txt")"
grep -q "submitted: .*pp-$hex-2" "$T/show.txt" || fail "rerun's job: $(cat "$T/show.txt")"
grep -q "submitted: .*pp-$hex-1" "$T/show.txt" || fail "history lost: $(cat "$T/show.txt")"
stats >"$T/stats.json"
# The infrastructure_pid goes up without the loop waiting for its answer:
# waited for, not read once.
server_rerun() { pf GET "/flow_runs/$R" | jq -r '"\(.run_count) \((.infrastructure_pid // "") | test("pp-'"$hex"'-2"))"'; }
rerun_reported() { [ "$(server_rerun)" = "2 true" ]; }
wait_for 30 rerun_reported || fail "rerun on the server: run_count, new infrastructure: $(server_rerun)"
pend=$(jq -r --arg id "$R" '.keyed["prefect.pending_accepted"][$id]' "$T/stats.json")
[ "$pend" = 2 ] || fail "$pend PENDING claims accepted, want 2"
jobs=$(jq -r --arg h "$hex" '[.keyed["cloudrun.executions"] | keys[] | select(contains($h))] | length' "$T/stats.json")
[ "$jobs" = 2 ] || fail "$jobs Cloud Run jobs for the run, want 2"
crashed=$(jq '.keyed["prefect.set_state"]["CRASHED:ACCEPT"] // 0' "$T/stats.json")
[ "$crashed" = 0 ] || fail "an outcome was reported: $crashed CRASHED"

# ---- a resume of a suspended flow ----
P=$(new_run '{"job_variables":{"env":{"PUSHPOOL_MOCK_FLOW":"paused"}}}')
wait_for 30 is state_of "$P" PAUSED || fail "not paused: $(state_of "$P")"
wait_for 30 is stored "$P" SUCCEEDED || fail "paused run in the store: $(stored "$P")"
pf PATCH "/flow_runs/$P" '{"job_variables":{"env":{"PUSHPOOL_MOCK_FLOW":"completed"}}}' >/dev/null
pf POST "/flow_runs/$P/set_state" '{"state":{"type":"SCHEDULED","name":"Resuming"}}' |
	jq -e '.status == "ACCEPT"' >/dev/null || fail "the resume was not accepted"
wait_for 30 is state_of "$P" COMPLETED || fail "resumed run: $(state_of "$P")"
wait_for 30 is stored "$P" SUCCEEDED || fail "resumed run in the store: $(stored "$P")"
"$PUSHPOOL" runs -c "$T/pushpool.conf" show "$P" | grep -q '^reruns: *1$' || fail "resume not a rerun"

# ---- a cancellation the flow finishes first ----
# The job must still run when the cancellation comes: the mock's clock is
# held and moved on in small steps only until the flow reports RUNNING
# (its container starts), long before its run time is over.
clock '{"clock":"hold"}'
C=$(new_run '{}')
step_to_running() {
	clock '{"advance_ms":20}'
	[ "$(state_of "$C")" = RUNNING ]
}
wait_for 30 step_to_running || fail "not running: $(state_of "$C")"
live() { case $(stored "$C") in SUBMITTED | RUNNING) return 0 ;; esac; return 1; }
wait_for 30 live || fail "not submitted in the store: $(stored "$C")"
# While pushpool is not looking, the run is cancelled and the flow's own
# supervisor finishes the cancellation.
kill -STOP "$SV"
pf POST "/flow_runs/$C/set_state" '{"state":{"type":"CANCELLING"},"force":true}' >/dev/null
pf POST "/flow_runs/$C/set_state" '{"state":{"type":"CANCELLED","message":"cancelled by the flow"}}' >/dev/null
kill -CONT "$SV"
cancels() { [ "$(stats | jq '.counters["cloudrun.cancel"] // 0')" -ge 1 ]; }
wait_for 30 cancels || fail "the remote job was not cancelled: $(stats | jq -c .counters)"
clock '{"clock":"run"}'
wait_for 30 is stored "$C" CANCELLED || fail "store: $(stored "$C")"
msg=$(pf GET "/flow_runs/$C" | jq -r '"\(.state_type): \(.state.message)"')
[ "$msg" = "CANCELLED: cancelled by the flow" ] || fail "the flow's CANCELLED was overwritten: $msg"
[ "$(stats | jq -r .live.live_executions)" = 0 ] || fail "executions left running"
echo "ok: a UI retry of a finished run ran again as attempt 2 (its own job, COMPLETED, run_count 2); a resumed suspended flow ran again; a cancellation the flow finished first still cancelled the remote job"
