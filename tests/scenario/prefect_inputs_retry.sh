#!/bin/sh
# A Prefect flow run whose job inputs are unavailable for a retryable
# reason when it is first prepared (dispatcher/inflight.c, inflight_start:
# "inputs unavailable, retrying later") is given back untried and sent
# later as try 1. The claim took the run as its first try's intent
# (SUBMITTING, attempt 1, "submitting (try 1)"); with no try made, the
# release withdraws it: SCHEDULED, attempt 0, no lease, a backoff, and
# "released before submission". Once the inputs can be read the run is
# claimed again and submitted as try 1 (never "try 2"), exactly once.
#
# How the failure is made, with no race against the clock: the flow run's
# job variables name a Prefect variable, which the source reads from the
# server whenever it resolves a job (sources/prefect_blocks.c: variables
# are never cached), so its first preparation makes one API call. The mock
# holds serve's claim-time read of the deployment (record_claim, before the
# run is in the store) at a barrier; while serve is provably inside that
# call the test makes every later Prefect answer a dropped connection
# (reset_after_action_rate 1: checked at admission, so the held call,
# admitted before, is answered), then completes the barrier with a read of
# its own (dropped too, but counted by the barrier, which comes after the
# fault check). serve records the claim and prepares the run: its variable
# read is dropped, a transport error (PP_ETRANSIENT, pp_err_retryable).
# The faults end once the store shows the release.
set -eu
. "$(pwd)/tests/scenario/prefect_test.inc"
. "$ROOT/tests/scenario/prefect_lib.inc"
SV=
# The mock with SIGKILL: a barrier still armed (a failed test) would keep
# a plain kill, and serve's call held in it, waiting out its timeout.
cleanup() {
	for p in $SV; do kill "$p" 2>/dev/null || true; done
	for p in $MOCK_PID; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
DB=$T/state/pushpool.db
db() { sqlite3 -cmd ".timeout 10000" "$DB" "$1"; }
faults() { # JSON
	curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" "$BASE/control/faults" >/dev/null
}
keyed() { # COUNTER KEY: its value in the mock's stats, 0 when absent
	stats | jq --arg c "$1" --arg k "$2" '.keyed[$c][$k] // 0'
}

pf_setup_pools ecs
pf POST /variables/ '{"name":"pp_inputs","value":"from-a-variable"}' >/dev/null
FR=$(pf POST "/deployments/$DEP_ecs/create_flow_run" \
	'{"job_variables":{"env":{"PP_INPUT":"{{ prefect.variables.pp_inputs }}"}}}' | jq -r .id)
case $FR in ????????-????-????-????-????????????) ;; *) fail "no flow run: $FR" ;; esac

curl -fsS -X POST -H 'Content-Type: application/json' \
	-d '{"action":"GET deployments","count":2,"timeout_ms":45000}' \
	"$BASE/prefect/control/barrier" >/dev/null
"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve.log" 2>&1 &
SV=$!
held() { [ "$(keyed prefect.barrier_held "GET deployments")" = 1 ]; }
wait_for 20 held || fail "serve's claim never read the deployment"
# Inside the claim: the run is not in the store yet, so not prepared.
[ "$(db "SELECT count(*) FROM runs")" = 0 ] || fail "run stored before its claim was recorded"
faults '{"api":"prefect","reset_after_action_rate":1}'
curl -sS -o /dev/null -H "Authorization: Bearer $PF_KEY" "$PF/deployments/$DEP_ecs" 2>/dev/null || true
passed() { [ "$(keyed prefect.barrier_passed "GET deployments")" = 2 ]; }
wait_for 10 passed || fail "the barrier did not let both reads through"

# The first preparation failed: the claimed try withdrawn and the next one
# put off (a next_attempt_ms set, not before the claim's intent). One read
# of the row and its last event together, so that a re-claim cannot come
# between them.
RUN="(SELECT id FROM runs WHERE source = 'prefect' AND source_ref = '$FR')"
RELEASED="SELECT r.state || ',' || r.attempt || ',' || COALESCE(r.lease_owner, '-') || ',' ||
	(r.next_attempt_ms >= (SELECT max(ts_ms) FROM run_events WHERE run_id = r.id
		AND state = 'SUBMITTING')) || ',' || e.state || ',' || e.message
	FROM runs r, run_events e WHERE r.id = $RUN AND e.run_id = r.id
	ORDER BY e.ts_ms DESC, e.rowid DESC LIMIT 1"
released() { [ "$(db "$RELEASED")" = "SCHEDULED,0,-,1,SCHEDULED,released before submission" ]; }
wait_for 20 released ||
	fail "not given back untried: $(db "$RELEASED"); events: $(db "SELECT state, message FROM run_events WHERE run_id = $RUN")"
# Its first events: the claim's intent, then the withdrawal.
first=$(db "SELECT group_concat(s, ';') FROM (SELECT state || ',' || message AS s FROM run_events
	WHERE run_id = $RUN AND message IN ('submitting (try 1)', 'released before submission')
	ORDER BY ts_ms, rowid LIMIT 2)")
[ "$first" = "SUBMITTING,submitting (try 1);SCHEDULED,released before submission" ] ||
	fail "first events: $first"
ID=$(db "SELECT id FROM runs WHERE source_ref = '$FR'")
grep -q "run $ID: inputs unavailable, retrying later: .*variable pp_inputs" "$T/serve.log" ||
	fail "no 'inputs unavailable' warning for run $ID"
[ "$(keyed dropped "prefect:GET variables/pp_inputs")" -ge 1 ] || fail "the variable's read was not failed"
[ "$(stats | jq '.counters.RunTaskStarted // 0')" = 0 ] || fail "a task started while the inputs were unavailable"
faults '{"api":"prefect","reset_after_action_rate":0}'

# Then prepared again and submitted as try 1, once.
done_() { [ "$(db "SELECT state FROM runs WHERE id = '$ID'")" = SUCCEEDED ]; }
wait_for 30 done_ || fail "run $(db "SELECT state, attempt, last_error FROM runs WHERE id = '$ID'")"
last=$(db "SELECT message FROM run_events WHERE run_id = '$ID' AND message LIKE 'submitting (try %'
	ORDER BY ts_ms DESC, rowid DESC LIMIT 1")
[ "$last" = "submitting (try 1)" ] || fail "last intent: $last"
[ "$(db "SELECT count(*) FROM run_events WHERE run_id = '$ID' AND message LIKE 'submitting (try %'
	AND message != 'submitting (try 1)'")" = 0 ] ||
	fail "a later try: $(db "SELECT state, message FROM run_events WHERE run_id = '$ID'")"
# After the last withdrawal: its intent, then the submission.
after=$(db "SELECT group_concat(state, ',') FROM (SELECT state FROM run_events WHERE run_id = '$ID'
	AND rowid > (SELECT max(rowid) FROM run_events WHERE run_id = '$ID'
		AND message = 'released before submission') ORDER BY ts_ms, rowid)")
case $after in SUBMITTING,SUBMITTED,*) ;; *) fail "events after the release: $after" ;; esac
[ "$(db "SELECT attempt FROM runs WHERE id = '$ID'")" = 1 ] || fail "attempt $(db "SELECT attempt FROM runs WHERE id = '$ID'")"
stats >"$T/stats.json"
[ "$(jq '.counters.RunTaskStarted // 0' "$T/stats.json")" = 1 ] &&
	[ "$(jq '.keyed.requests["ecs:RunTask"] // 0' "$T/stats.json")" = 1 ] ||
	fail "submissions: $(jq -c '{started: .counters.RunTaskStarted, runtask: .keyed.requests["ecs:RunTask"]}' "$T/stats.json")"
[ "$(jq '.keyed["prefect.variable_reads"].pp_inputs // 0' "$T/stats.json")" -ge 2 ] ||
	fail "variable read $(jq '.keyed["prefect.variable_reads"].pp_inputs' "$T/stats.json") times"
kill -TERM "$SV"
wait "$SV" || fail "serve exited $? on SIGTERM"
SV=
echo "ok: inputs unavailable at the first preparation: the claimed try withdrawn (SCHEDULED, attempt 0, no lease), then submitted once as try 1"
