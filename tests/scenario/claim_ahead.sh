#!/bin/sh
# Runs claimed ahead of a free submission slot (dispatcher/loop_pools.c):
# with max_submitting 4 a claim takes one run more than the free slots,
# each as its first try's intent (SUBMITTING, store.h's claim_intents); the
# first four in the claim's order start. The mock holds every ECS answer
# for 30 s, so the four submissions keep their slots and the fifth run
# stays claimed, its try not sent, for as long as the test needs: every
# wait below is on the store's state, none races the clock.
#  - Stopping gives the run claimed ahead back: SCHEDULED, no lease, its
#    try uncounted (attempt 0, "released before submission"), so another
#    dispatcher can take it at once as try 1.
#  - A reload keeps it claimed ahead, in the new pool of its name: a
#    cancel still reaches it, and ends it at once, CANCELLED "before
#    submission", while no slot has freed.
#  - A reload that removes its pool gives it back at once.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
MOCK_PID=
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
	# SIGKILL: a plain kill would wait out the answers it still holds.
	if [ -n "$MOCK_PID" ]; then
		kill -9 "$MOCK_PID" 2>/dev/null
		wait "$MOCK_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$T/serve.log" ] && tail -n 20 "$T/serve.log" >&2
	exit 1
}

MOCK_RUN_SECONDS=3600 MOCK_PROVISION_SECONDS=3600 DISPATCHER_EXTRA="status_interval = 600
grace_seconds = 0.2
sweep_interval = 0" . "$(dirname "$0")/../../tools/mock-env.sh"
sed -i "s/^max_submitting = .*/max_submitting = 4/" "$T/pushpool.conf"
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"api":"ecs","latency_ms":30000}' \
	"$BASE/control/faults" >/dev/null

STORE=
db() { sqlite3 -cmd ".timeout 10000" "$STORE/pushpool.db" "$1"; }
# until SQL prints WANT, for at most 20 s (the answers are held for 30 s)
wait_for() { # WANT SQL WHAT
	i=0
	while [ "$(db "$2")" != "$1" ]; do
		i=$((i + 1))
		[ $i -gt 200 ] && fail "$3: $(db "$2") instead of $1"
		kill -0 "$SERVE_PID" 2>/dev/null || fail "serve exited"
		sleep 0.1
	done
}
# The last of the five in the claim's order.
HELD="SELECT id FROM runs ORDER BY priority DESC, scheduled_ms DESC, id DESC LIMIT 1"
start() { # store directory: five ECS runs due, serve on them
	sed -i "s|^state_dir = .*|state_dir = $T/$1|" "$T/pushpool.conf"
	STORE=$T/$1
	mkdir -p "$STORE"
	"$PUSHPOOL" schedule -c "$T/pushpool.conf" -p ecs --count 5 >/dev/null
	"$PUSHPOOL" serve -c "$T/pushpool.conf" 2>"$T/serve.log" &
	SERVE_PID=$!
	wait_for 5 "SELECT count(*) FROM runs WHERE state = 'SUBMITTING' AND lease_owner IS NOT NULL" \
		"runs claimed"
}

# Stopping with a run claimed ahead.
start stop
held=$(db "$HELD")
kill -INT "$SERVE_PID"
wait "$SERVE_PID" || fail "serve exited $? after SIGINT"
SERVE_PID=
[ "$(db "SELECT state || ',' || COALESCE(lease_owner, '-') || ',' || attempt FROM runs
	WHERE id = '$held'")" = "SCHEDULED,-,0" ] || fail "run claimed ahead not given back at stop: $(db \
	"SELECT state, lease_owner, attempt FROM runs WHERE id = '$held'")"
[ "$(db "SELECT state || ',' || message FROM run_events WHERE run_id = '$held'
	ORDER BY ts_ms DESC, rowid DESC LIMIT 1")" = "SCHEDULED,released before submission" ] ||
	fail "run claimed ahead: $(db "SELECT state, message FROM run_events WHERE run_id = '$held'")"
# The four others were sent: still submitting, their tries counted.
[ "$(db "SELECT count(*) FROM runs WHERE state = 'SUBMITTING' AND attempt = 1")" = 4 ] ||
	fail "runs sent: $(db "SELECT state, attempt FROM runs")"

# Cancelling a run claimed ahead, on a new store and a reset mock.
curl -fsS -X POST "$BASE/control/reset" >/dev/null
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"api":"ecs","latency_ms":30000}' \
	"$BASE/control/faults" >/dev/null
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"name":"*","on":false}' \
	"$BASE/control/behaviours" >/dev/null
start cancel
held=$(db "$HELD")
reloads() { grep -c 'configuration reloaded' "$T/serve.log" || true; }
kill -HUP "$SERVE_PID"
i=0
while [ "$(reloads)" != 1 ]; do
	i=$((i + 1))
	[ $i -gt 200 ] && fail "no reload"
	sleep 0.1
done
"$PUSHPOOL" runs -c "$T/pushpool.conf" cancel "$held" >/dev/null
wait_for CANCELLED "SELECT state FROM runs WHERE id = '$held'" "cancelled run claimed ahead"
db "SELECT last_error FROM runs WHERE id = '$held'" | grep -q 'cancelled before submission' ||
	fail "cancelled run: $(db "SELECT last_error FROM runs WHERE id = '$held'")"
# The four others still hold their slots: the cancel did not wait for one.
[ "$(db "SELECT count(*) FROM runs WHERE state = 'SUBMITTING'")" = 4 ] ||
	fail "the cancel waited for a slot"
kill -INT "$SERVE_PID"
wait "$SERVE_PID" || fail "serve exited $? after SIGINT"
SERVE_PID=

# A reload without the run's pool, on a new store.
start removed
held=$(db "$HELD")
awk '/^\[/ { skip = ($0 == "[pool \"ecs\"]") } !skip' "$T/pushpool.conf" >"$T/less.conf"
cp "$T/less.conf" "$T/pushpool.conf"
kill -HUP "$SERVE_PID"
wait_for "SCHEDULED,-" "SELECT state || ',' || COALESCE(lease_owner, '-') FROM runs
	WHERE id = '$held'" "run claimed ahead of a removed pool"
kill -INT "$SERVE_PID"
wait "$SERVE_PID" || fail "serve exited $? after SIGINT"
SERVE_PID=
echo "claim_ahead: ok"
