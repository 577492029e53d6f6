#!/bin/sh
# Chaos: RUNS runs across the four pools dispatched by `pushpool serve`
# while the mock injects 5% 5xx, 2% throttling with Retry-After, 1% resets
# after the server acted and 1% cut bodies on every API (token endpoints
# included), and serve is killed with SIGKILL every KILL_MIN..KILL_MAX
# seconds and restarted. Passes when every run is SUCCEEDED, each run made
# exactly one remote object (mock keyed counters), nothing remote is left
# live, and the last serve stops cleanly on SIGTERM.
#   usage: PUSHPOOL=build/pushpool sh tests/chaos/run.sh
#   env:   RUNS (default 1000, multiple of 4), KILL_MIN/KILL_MAX (seconds,
#          default 1/4), DEADLINE (seconds, default 90), SEED (kill times,
#          default 1), KEEP_T=1 keeps the work directory, STORE=postgresql
#          runs on a throwaway PostgreSQL server (tests/pg-env.sh) instead
#          of SQLite.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
RUNS=${RUNS:-1000}
KILL_MIN=${KILL_MIN:-1}
KILL_MAX=${KILL_MAX:-4}
DEADLINE=${DEADLINE:-90}
SEED=${SEED:-1}
PER_POOL=$((RUNS / 4))
[ $((PER_POOL * 4)) -eq "$RUNS" ] || { echo "RUNS must be a multiple of 4" >&2; exit 64; }
ROOT=$(pwd)
T=$(mktemp -d)
MOCK_PID=
SV=
PGDIR=
cleanup() {
	[ -n "$SV" ] && kill -9 "$SV" 2>/dev/null
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	[ -n "$PGDIR" ] && sh "$ROOT/tests/pg-env.sh" stop "$PGDIR"
	if [ -n "${KEEP_T:-}" ]; then echo "chaos: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
	echo "FAIL (SEED=$SEED, RUNS=$RUNS): $*"
	echo "--- last serve log lines"
	tail -n 25 "$T/serve.log"
	exit 1
}
MOCK_RUN_SECONDS=${MOCK_RUN_SECONDS:-0.3}
MOCK_PROVISION_SECONDS=${MOCK_PROVISION_SECONDS:-0.1}
# On SQLite the lease outlives the test, so only the dead-owner check frees
# a killed dispatcher's runs. PostgreSQL has no such check (docs/store.md):
# its leases expire, so they are short. Enough attempts that 5% 5xx never
# exhausts a run.
LEASE=600
[ "${STORE:-sqlite}" = postgresql ] && LEASE=5
DISPATCHER_EXTRA="lease_seconds = $LEASE
status_interval = 0.3
max_submitting = 64
max_in_flight = 2000
submit_attempts = 20"
. "$ROOT/tools/mock-env.sh"
PP() { "$PUSHPOOL" "$@"; }
if [ "${STORE:-sqlite}" = postgresql ]; then
	sh "$ROOT/tests/pg-env.sh" check
	eval "$(sh "$ROOT/tests/pg-env.sh" start)"
	printf '\n[store]\nurl = %s\n' "$PGURL" >>"$T/pushpool.conf"
	PP store migrate -c "$T/pushpool.conf" >/dev/null 2>"$T/migrate.log" ||
		fail "store migrate: $(cat "$T/migrate.log")"
fi
for pool in cloud-run ecs aci modal; do
	PP schedule -c "$T/pushpool.conf" -p "$pool" --count "$PER_POOL" --name "chaos-$pool" >/dev/null
done
curl -fsS -X POST -H 'Content-Type: application/json' "$BASE/control/faults" -d \
	'{"api":"*","error_rate":0.05,"throttle_rate":0.02,"retry_after":1,
	  "reset_after_action_rate":0.01,"cut_body_rate":0.01}' >/dev/null

# Run states as "COUNT STATE" lines.
states() { PP runs -c "$T/pushpool.conf" ls | awk 'NR > 1 { n[$3]++ } END { for (s in n) print n[s], s }'; }
unfinished() {
	states | awk '$2 !~ /^(SUCCEEDED|FAILED|CRASHED|CANCELLED|DEAD)$/ { n += $1 } END { print n + 0 }'
}
start=$(date +%s)
kills=0
left=$RUNS
while :; do
	"$PUSHPOOL" serve -c "$T/pushpool.conf" 2>>"$T/serve.log" &
	SV=$!
	pause=$(awk -v s="$SEED$kills" -v lo="$KILL_MIN" -v hi="$KILL_MAX" \
		'BEGIN { srand(s); printf "%.2f", lo + rand() * (hi - lo) }')
	sleep "$pause"
	left=$(unfinished)
	[ "$left" -eq 0 ] && break
	[ $(($(date +%s) - start)) -lt "$DEADLINE" ] ||
		fail "$left of $RUNS runs not terminal after ${DEADLINE}s ($kills kills): $(states | tr '\n' ' ')"
	kill -9 "$SV"
	wait "$SV" 2>/dev/null || true
	SV=
	kills=$((kills + 1))
done
kill -TERM "$SV"
rc=0
wait "$SV" || rc=$?
SV=
[ "$rc" -eq 0 ] || fail "serve exited $rc on SIGTERM"
elapsed=$(($(date +%s) - start))

st=$(states | tr '\n' ' ')
[ "$st" = "$RUNS SUCCEEDED " ] || fail "run states: $st
$(PP runs -c "$T/pushpool.conf" ls | grep -v SUCCEEDED | head -n 8)"
S=$T/stats.json
curl -fsS "$BASE/control/stats" >"$S"
# One entry per remote object keyed by its name or token, every count 1:
# PER_POOL entries means none lost, all ones means no duplicates.
for map in ecs.clientToken aci.creates modal_sandbox_creates cloudrun.executions; do
	len=$(jq -r ".keyed[\"$map\"] // {} | length" "$S")
	ones=$(jq -r "[.keyed[\"$map\"] // {} | to_entries[] | select(.value == 1)] | length" "$S")
	[ "$len" = "$PER_POOL" ] && [ "$ones" = "$PER_POOL" ] ||
		fail "$map: $len objects, $ones created once; want $PER_POOL"
done
for c in RunTaskStarted cloudrun.creates; do
	n=$(jq -r ".counters[\"$c\"] // 0" "$S")
	[ "$n" = "$PER_POOL" ] || fail "$c = $n, want $PER_POOL"
done
for k in live_jobs live_executions live_tasks live_container_groups live_modal_sandboxes; do
	[ "$(jq -r ".live.$k // 0" "$S")" = 0 ] || fail "$k left: $(jq -r ".live.$k" "$S")"
done
# Every ECS run has the same definition, so one registered revision is
# shared by all; a second one would be a leak from a retried register.
taskdefs=$(jq -r '.live.live_task_definitions // 0' "$S")
[ "$taskdefs" = 1 ] || fail "$taskdefs task definitions registered, want the 1 shared one"
injected=$(jq -r '[.keyed.injected // {} | .[]] | add // 0' "$S")
dropped=$(jq -r '[.keyed.dropped // {} | .[]] | add // 0' "$S")
cut=$(jq -r '[.keyed.cut // {} | .[]] | add // 0' "$S")
[ "$injected" -gt 0 ] && [ "$dropped" -gt 0 ] && [ "$cut" -gt 0 ] ||
	fail "faults injected: $injected, answers dropped: $dropped, bodies cut: $cut"
[ "$kills" -gt 0 ] || fail "serve was never killed"
echo "chaos: $RUNS runs SUCCEEDED in ${elapsed}s through $kills kill -9 restarts;" \
	"$injected errors/throttles injected, $dropped answers dropped, $cut bodies cut;" \
	"one remote object per run, nothing left"
