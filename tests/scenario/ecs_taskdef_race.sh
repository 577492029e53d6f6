#!/bin/sh
# Two concurrent `once` (each with its own store, as two hosts would run
# them) that find no task definition to reuse both register one for the
# same content (issue 18). The mock holds both RegisterTaskDefinition calls
# until both have arrived (POST /aws/control/barrier), so the race happens
# every time; afterwards the family must hold one ACTIVE revision: the
# registrant of the higher one runs its task with its own, then finds the
# lower one with the same content hash tag, switches to it for later runs
# and deregisters its own. Both runs succeed.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
MOCK_PID=
P1=
P2=
cleanup() {
	for p in $P1 $P2; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
. "$(dirname "$0")/../../tools/mock-env.sh"

stats() { curl -fsS "$BASE/control/stats" | tr -d ' \n'; }
stat() {
	stats | grep -o "\"$1\":[0-9]*" | head -n 1 | sed 's/.*://' | grep . || echo 0
}

# Two configurations, two stores: the same pools.
for i in 1 2; do
	mkdir -p "$T/s$i"
	sed "s|^state_dir = .*|state_dir = $T/s$i|" "$T/pushpool.conf" >"$T/c$i.conf"
	"$PUSHPOOL" schedule -c "$T/c$i.conf" -p ecs >"$T/id$i" 2>"$T/err" ||
		fail "schedule $i: $(cat "$T/err")"
done
[ "$("$PUSHPOOL" store id -c "$T/c1.conf")" != "$("$PUSHPOOL" store id -c "$T/c2.conf")" ] ||
	fail "two stores share an id"

curl -fsS -X POST -H 'Content-Type: application/json' \
	-d '{"action":"RegisterTaskDefinition","count":2,"timeout_ms":60000}' \
	"$BASE/aws/control/barrier" >/dev/null || fail "barrier"
timeout 120 "$PUSHPOOL" once --wait -c "$T/c1.conf" >"$T/o1" 2>"$T/e1" &
P1=$!
timeout 120 "$PUSHPOOL" once --wait -c "$T/c2.conf" >"$T/o2" 2>"$T/e2" &
P2=$!
wait "$P1" || fail "once 1: $(cat "$T/o1" "$T/e1")"
P1=
wait "$P2" || fail "once 2: $(cat "$T/o2" "$T/e2")"
P2=

# The race happened: both registered, both were held at the barrier.
[ "$(stat RegisterTaskDefinition)" -eq 2 ] || fail "registrations: $(stats)"
stats | grep -q '"ecs.barrier_passed":{"RegisterTaskDefinition":2}' ||
	fail "the barrier did not hold both registrations: $(stats)"
# ... and converged on one revision.
[ "$(stat live_task_definitions)" -eq 1 ] ||
	fail "$(stat live_task_definitions) ACTIVE revisions: $(stats) $(cat "$T/e1" "$T/e2")"
[ "$(stat DeregisterTaskDefinition)" -eq 1 ] || fail "deregistrations: $(stats)"
cat "$T/e1" "$T/e2" | grep -q 'has the same content and a lower revision than .*:2, which was registered concurrently' ||
	fail "no convergence log line: $(cat "$T/e1" "$T/e2")"
for i in 1 2; do
	"$PUSHPOOL" runs -c "$T/c$i.conf" show "$(cat "$T/id$i")" >"$T/show$i" 2>&1 ||
		fail "runs show $i: $(cat "$T/show$i")"
	grep -q 'SUCCEEDED' "$T/show$i" || fail "run $i did not succeed: $(cat "$T/show$i" "$T/e$i")"
done
echo "ok: two concurrent registrations of one task definition converge on one ACTIVE revision"
