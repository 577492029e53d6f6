#!/bin/sh
# max_runtime (issue 25) on each cloud of the mock: jobs that would run until
# stopped are cancelled in the cloud once they have run past their
# max_runtime (the pool setting for Cloud Run, ECS and ACI, the job variable
# for Modal), and each run ends FAILED with the reason. The mock shows the
# cancel each cloud got: ECS StopTask, Cloud Run CancelExecution, ACI the
# group's DELETE (ACI's cancel), Modal SandboxTerminate of a running sandbox.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
MOCK_PID=
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$T/serve.err" ] && tail -n 20 "$T/serve.err" >&2
	exit 1
}
. "$(dirname "$0")/../../tools/mock-env.sh"
# Every job is held (PUSHPOOL_MOCK_HOLD): it runs until stopped, so only
# max_runtime ends it, however long the machine takes.
HOLD='env={"PUSHPOOL_MOCK_HOLD": "1"}'
POOLS="cloud-run ecs aci modal"
C=$T/max.conf
sed '/^\[pool "\(cloud-run\|ecs\|aci\)"\]/a max_runtime = 1' "$T/pushpool.conf" >"$C"
: >"$T/ids"
for p in $POOLS; do
	vars=
	[ $p = modal ] && vars="-v max_runtime=1"
	# shellcheck disable=SC2086
	"$PUSHPOOL" schedule -c "$C" -p "$p" -v "$HOLD" $vars >"$T/id.$p" 2>"$T/err" ||
		fail "schedule $p: $(cat "$T/err")"
	cat "$T/id.$p" >>"$T/ids"
done
state() { "$PUSHPOOL" runs -c "$C" show "$1" | sed -n 's/^state: *//p'; }
"$PUSHPOOL" serve -c "$C" >"$T/serve.out" 2>"$T/serve.err" &
SERVE_PID=$!
i=0
while :; do
	left=0
	for id in $(cat "$T/ids"); do
		case $(state "$id") in
		SUCCEEDED | FAILED | CRASHED | CANCELLED | DEAD) ;;
		*) left=$((left + 1)) ;;
		esac
	done
	[ $left -eq 0 ] && break
	i=$((i + 1))
	[ $i -le 600 ] || fail "$left run(s) unfinished after 60 s"
	sleep 0.1
done
kill "$SERVE_PID"
wait "$SERVE_PID" || true
SERVE_PID=
curl -fsS "$BASE/control/stats" >"$T/stats.json"
for p in $POOLS; do
	id=$(cat "$T/id.$p")
	"$PUSHPOOL" runs -c "$C" show "$id" >"$T/show.$p"
	[ "$(state "$id")" = FAILED ] || fail "$p: not FAILED: $(cat "$T/show.$p")"
	grep -q '^last error: *max_runtime 1s exceeded (ran [0-9]' "$T/show.$p" ||
		fail "$p: reason: $(cat "$T/show.$p")"
	grep -q ' RUNNING  *max_runtime 1s exceeded; cancelling remote job$' "$T/show.$p" ||
		fail "$p: no cancel event while RUNNING: $(cat "$T/show.$p")"
done
req() { jq -r ".keyed.requests[\"$1\"] // 0" "$T/stats.json"; }
[ "$(jq -r '.counters.StopTask // 0' "$T/stats.json")" = 1 ] || fail "ECS: StopTask: $(jq -c .counters "$T/stats.json")"
[ "$(jq -r '.counters["cloudrun.cancel"] // 0' "$T/stats.json")" = 1 ] ||
	fail "Cloud Run: CancelExecution: $(jq -c .counters "$T/stats.json")"
[ "$(req arm:ContainerGroups_Delete)" -ge 1 ] || fail "ACI: $(jq -c .keyed.requests "$T/stats.json")"
[ "$(jq -r '.counters["modal.terminated"] // 0' "$T/stats.json")" = 1 ] ||
	fail "Modal: SandboxTerminate: $(jq -c .counters "$T/stats.json")"
for k in live_jobs live_executions live_tasks live_container_groups live_modal_sandboxes; do
	[ "$(jq -r ".live.$k" "$T/stats.json")" = 0 ] || fail "$k left: $(jq -r ".live.$k" "$T/stats.json")"
done

# 2. A restart does not restart the clock: the run's start is read back from
# its stored "running" event. serve stops while the run is RUNNING; once its
# event is 6 s old (well past max_runtime = 2), a new serve cancels it at the
# first look, having run those 6 s, not 2 s counted from the restart.
C2=$T/restart.conf
sed '/^\[pool "cloud-run"\]/a max_runtime = 2' "$T/pushpool.conf" >"$C2"
C=$C2
id=$("$PUSHPOOL" schedule -c "$C" -p cloud-run -v "$HOLD")
"$PUSHPOOL" serve -c "$C" >"$T/serve.out" 2>"$T/serve.err" &
SERVE_PID=$!
i=0
until [ "$(state "$id")" = RUNNING ]; do
	i=$((i + 1))
	[ $i -le 600 ] || fail "run $id not RUNNING after 60 s"
	sleep 0.1
done
kill "$SERVE_PID"
wait "$SERVE_PID" || true
SERVE_PID=
[ "$(state "$id")" = RUNNING ] || fail "run $id left $(state "$id") by serve"
started=$("$PUSHPOOL" runs -c "$C" show "$id" | awk '$2 == "RUNNING" && $3 == "running" { print $1 }')
started_s=$(date -d "$started" +%s) || fail "no running event: $("$PUSHPOOL" runs -c "$C" show "$id")"
until [ "$(date +%s)" -ge $((started_s + 7)) ]; do sleep 0.2; done
"$PUSHPOOL" serve -c "$C" >"$T/serve.out" 2>"$T/serve.err" &
SERVE_PID=$!
i=0
until [ "$(state "$id")" = FAILED ]; do
	i=$((i + 1))
	[ $i -le 600 ] || fail "run $id not FAILED after 60 s: $(state "$id")"
	sleep 0.1
done
kill "$SERVE_PID"
wait "$SERVE_PID" || true
SERVE_PID=
# (then the job's last lines: a held job has written them)
ran=$("$PUSHPOOL" runs -c "$C" show "$id" | sed -n 's/^last error: *max_runtime 2s exceeded (ran \([0-9]*\)s)\(;.*\)\{0,1\}$/\1/p')
[ -n "$ran" ] && [ "$ran" -ge 6 ] ||
	fail "after a restart: $("$PUSHPOOL" runs -c "$C" show "$id")"

# 3. run --wait keeps it too (here by the job variable).
rc=0
out=$("$PUSHPOOL" run -c "$C" -p ecs --wait --timeout 60 -v max_runtime=1 -v "$HOLD" 2>"$T/run.err") || rc=$?
# stdout: the task's ARN, then the outcome
[ $rc -eq 1 ] && [ "$(echo "$out" | tail -n 1)" = "FAILED: max_runtime 1s exceeded" ] ||
	fail "run --wait exited $rc: $out $(cat "$T/run.err")"
[ "$(curl -fsS "$BASE/control/stats" | jq -r '.counters.StopTask')" = 2 ] ||
	fail "run --wait did not stop its task"
echo "ok: max_runtime cancelled a run on each cloud (serve and run --wait), FAILED with the reason, and counts across a restart"
