#!/bin/sh
# pushpool provision for Cloud Run, interrupted: kill -9 at random points of
# apply (operations slowed so most kills land inside it), each followed by a
# re-run, ends where one clean apply does: no duplicate, nothing untagged,
# the planted resources untouched; destroy between rounds restores the
# project as it was.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/scenario/provision_gcp.inc"

control /control/behaviours '{"name": "gcp.lro", "on": true, "seconds": 0.2}'
pp provision apply -p cr --yes </dev/null >"$T/out" 2>&1 || fail "clean apply: $(cat "$T/out")"
clean=$(state)
[ "$clean" != "$before" ] || fail "the clean apply made nothing"

# kill -9 at ten random points of apply; each re-run ends at the clean
# state. Operations take 0.3 s in the apply that is killed, 0.05 s around it.
lro() {
	control /control/behaviours "{\"name\": \"gcp.lro\", \"on\": true, \"seconds\": $1}"
}
n=0
interrupted=0
for delay in $(awk 'BEGIN { srand(20); for (i = 0; i < 10; i++) printf "%.2f\n", rand() * 0.9 }'); do
	n=$((n + 1))
	lro 0.05
	pp provision destroy -p cr --yes </dev/null >"$T/out" 2>&1 || fail "destroy $n: $(cat "$T/out")"
	[ "$(state)" = "$before" ] || fail "destroy $n did not restore the project: $(state)"
	lro 0.3
	"$PUSHPOOL" -c "$T/pushpool.conf" provision apply -p cr --yes </dev/null >"$T/killed" 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	grep -q '^Wrote' "$T/killed" || interrupted=$((interrupted + 1))
	lro 0.05
	pp provision apply -p cr --yes </dev/null >"$T/out" 2>&1 ||
		fail "re-run $n after kill -9 at ${delay}s: $(cat "$T/out")"
	[ "$(state)" = "$clean" ] || fail "kill -9 at ${delay}s, re-run $n: $(state) != $clean"
done

# Most kills must land inside the apply, not after it.
[ $interrupted -ge 6 ] || fail "only $interrupted of $n kills interrupted an apply"

echo "ok   provision_gcp_kill: $n kill -9 at random points of apply ($interrupted mid-apply), each re-run equal to one clean apply"
