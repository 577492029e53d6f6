#!/bin/sh
# Start retries (issue 25), on each cloud of the mock. The mock's start
# failure fault (POST /control/faults {"api":A,"start_failures":1}) fails the
# next job A starts the way the cloud reports it: ECS stops the task with
# TaskFailedToStart and CannotPullContainerError, ACI shows the failed pull in
# the container's events, Cloud Run fails the execution's ResourcesAvailable
# condition with CONTAINER_MISSING, Modal ends the sandbox INIT_FAILURE.
#   1. start_retries = 1: the run is started again as attempt 2, a new remote
#      object with its own name and key, and SUCCEEDED; runs show lists both
#      attempts and the mock counted two objects, each created once.
#   2. start_retry_on without the failure's class: CRASHED at once, one
#      object, nothing retried.
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
POOLS="cloud-run ecs aci modal"
# The mock's API name for each pool, and the stats map with one entry per
# remote object it created (the value: how many times it was created).
api_of() { case $1 in cloud-run) echo cloudrun ;; *) echo "$1" ;; esac; }
map_of() {
	case $1 in
	cloud-run) echo cloudrun.executions ;;
	ecs) echo ecs.clientToken ;;
	aci) echo aci.creates ;;
	modal) echo modal_sandbox_creates ;;
	esac
}
stats() { curl -fsS "$BASE/control/stats" >"$T/stats.json"; }
objects() { jq -r ".keyed[\"$(map_of "$1")\"] // {} | length" "$T/stats.json"; }
created_once() {
	jq -r "[.keyed[\"$(map_of "$1")\"] // {} | to_entries[] | select(.value == 1)] | length" \
		"$T/stats.json"
}
inject() {
	body=$(for p in $POOLS; do printf '{"api":"%s","start_failures":1}\n' "$(api_of "$p")"; done |
		jq -s -c .)
	curl -fsS -X POST -d "$body" "$BASE/control/faults" >/dev/null || fail "inject: $body"
}
state() { "$PUSHPOOL" runs -c "$1" show "$2" | sed -n 's/^state: *//p'; }
# serve until every run in $T/ids is in a final state, then stop it.
serve_until_done() { # CONFIG
	"$PUSHPOOL" serve -c "$1" >"$T/serve.out" 2>"$T/serve.err" &
	SERVE_PID=$!
	i=0
	while :; do
		left=0
		for id in $(cat "$T/ids"); do
			case $(state "$1" "$id") in
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
}
schedule_all() { # CONFIG
	: >"$T/ids"
	for p in $POOLS; do
		"$PUSHPOOL" schedule -c "$1" -p "$p" >"$T/id.$p" 2>"$T/err" || fail "schedule $p: $(cat "$T/err")"
		cat "$T/id.$p" >>"$T/ids"
	done
}

# 1. Retried: one retry, a short backoff.
C1=$T/retry.conf
sed '/^\[pool /a start_retries = 1\nstart_retry_backoff = 0.2' "$T/pushpool.conf" >"$C1"
inject
schedule_all "$C1"
serve_until_done "$C1"
stats
for p in $POOLS; do
	id=$(cat "$T/id.$p")
	"$PUSHPOOL" runs -c "$C1" show "$id" >"$T/show.$p"
	[ "$(state "$C1" "$id")" = SUCCEEDED ] || fail "$p: not SUCCEEDED: $(cat "$T/show.$p")"
	# Both attempts listed: the first failed to start, the second succeeded,
	# each under its own remote name.
	a1=$(sed -n '/^start attempts:/,/^events:/p' "$T/show.$p" | grep '^  1  ') ||
		fail "$p: no attempt 1: $(cat "$T/show.$p")"
	a2=$(sed -n '/^start attempts:/,/^events:/p' "$T/show.$p" | grep '^  2  ') ||
		fail "$p: no attempt 2: $(cat "$T/show.$p")"
	case $p in
	modal) want="failed to start (resource_init)" ;;
	*) want="failed to start (image_pull)" ;;
	esac
	echo "$a1" | grep -qF "$want" || fail "$p: attempt 1 is not '$want': $a1"
	echo "$a2" | grep -q ' SUCCEEDED$' || fail "$p: attempt 2 did not succeed: $a2"
	r1=$(echo "$a1" | awk '{ print $2 }')
	r2=$(echo "$a2" | awk '{ print $2 }')
	[ "$r1" != "$r2" ] && [ "$r1" != - ] && [ "$r2" != - ] || fail "$p: remote names $r1, $r2"
	grep -q "^idempotency: *$id-2\$" "$T/show.$p" || fail "$p: key of attempt 2: $(cat "$T/show.$p")"
	[ "$(objects $p)" = 2 ] && [ "$(created_once $p)" = 2 ] ||
		fail "$p: $(objects $p) remote objects, $(created_once $p) created once; want 2 and 2"
	[ "$(jq -r ".keyed.injected[\"$(api_of "$p").start_failure\"] // 0" "$T/stats.json")" = 1 ] ||
		fail "$p: the mock failed $(jq -c .keyed.injected "$T/stats.json") starts"
done
# Every attempt's object was cleaned up, the failed one too.
for k in live_jobs live_executions live_tasks live_container_groups live_modal_sandboxes; do
	[ "$(jq -r ".live.$k" "$T/stats.json")" = 0 ] || fail "$k left: $(jq -r ".live.$k" "$T/stats.json")"
done

# 2. Not retried: the class is not in start_retry_on.
C2=$T/noretry.conf
sed '/^\[pool /a start_retries = 3\nstart_retry_on = capacity' "$T/pushpool.conf" >"$C2"
curl -fsS -X POST "$BASE/control/reset" >/dev/null
inject
schedule_all "$C2"
serve_until_done "$C2"
stats
for p in $POOLS; do
	id=$(cat "$T/id.$p")
	"$PUSHPOOL" runs -c "$C2" show "$id" >"$T/show.$p"
	[ "$(state "$C2" "$id")" = CRASHED ] || fail "$p: not CRASHED: $(cat "$T/show.$p")"
	grep -q "^last error: *failed to start (" "$T/show.$p" || fail "$p: error: $(cat "$T/show.$p")"
	[ "$(sed -n '/^start attempts:/,/^events:/p' "$T/show.$p" | grep -c '^  [0-9]')" = 1 ] ||
		fail "$p: retried: $(cat "$T/show.$p")"
	[ "$(objects $p)" = 1 ] || fail "$p: $(objects $p) remote objects, want 1"
done
[ -z "${SHOW_RUNS:-}" ] || cat "$T/show.ecs"
echo "ok: a failed start is retried as a new remote object per attempt and SUCCEEDED on each cloud; a class not retried is CRASHED at once"
