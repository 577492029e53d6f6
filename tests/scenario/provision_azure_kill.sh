#!/bin/sh
# pushpool provision for Azure, interrupted: kill -9 at random points of
# apply (asynchronous operations slowed so most kills land inside it), each
# followed by a re-run, ends where one clean apply does: no duplicate, no
# untagged resource, the planted resources untouched; destroy between
# rounds restores the subscription as it was.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/scenario/provision_azure.inc"

lro() {
	control /control/behaviours "{\"name\": \"azure.lro\", \"on\": true, \"seconds\": $1}"
	control /control/behaviours "{\"name\": \"azure.replication\", \"on\": true, \"seconds\": $1}"
}
lro 0.05
pp provision apply -p aci --location westeurope --yes </dev/null >"$T/out" 2>&1 || fail "clean apply: $(cat "$T/out")"
clean=$(state)
[ "$clean" != "$before" ] || fail "the clean apply made nothing"
# Every resource pushpool made carries its tag or description.
untagged() {
	curl -fsS "$BASE/azure/control/infra" | jq '[(.resource_groups + .identities + .registries)[] |
		select(.id | test("team-rg") | not) | select(.tags["pushpool-pool"] != "aci")] +
		[(.role_definitions + .role_assignments)[] |
		select(.properties.description | startswith("pushpool-pool=aci") | not)] | length'
}

n=0
interrupted=0
for delay in $(awk 'BEGIN { srand(21); for (i = 0; i < 10; i++) printf "%.2f\n", rand() * 1.2 }'); do
	n=$((n + 1))
	lro 0.05
	pp provision destroy -p aci --yes </dev/null >"$T/out" 2>&1 || fail "destroy $n: $(cat "$T/out")"
	[ "$(state)" = "$before" ] || fail "destroy $n did not restore the subscription: $(state)"
	lro 0.3
	"$PUSHPOOL" -c "$T/pushpool.conf" provision apply -p aci --location westeurope --yes </dev/null >"$T/killed" 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	grep -q '^Wrote' "$T/killed" || interrupted=$((interrupted + 1))
	lro 0.05
	pp provision apply -p aci --location westeurope --yes </dev/null >"$T/out" 2>&1 ||
		fail "re-run $n after kill -9 at ${delay}s: $(cat "$T/out")"
	[ "$(state)" = "$clean" ] || fail "kill -9 at ${delay}s, re-run $n: $(state) != $clean"
	[ "$(untagged)" -eq 0 ] || fail "kill -9 at ${delay}s: untagged resources: $(curl -fsS "$BASE/azure/control/infra")"
done

[ $interrupted -ge 6 ] || fail "only $interrupted of $n kills interrupted an apply"

echo "ok   provision_azure_kill: $n kill -9 at random points of apply ($interrupted mid-apply), each re-run equal to one clean apply, nothing untagged"
