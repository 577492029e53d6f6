#!/bin/sh
# pushpool provision for Azure, interrupted: kill -9 at random points of
# apply (asynchronous operations slowed so most kills land inside it), each
# followed by a re-run, ends where one clean apply does: no duplicate, no
# untagged resource, the planted resources untouched; destroy between
# rounds restores the subscription as it was. Then four kills of a
# --create-key apply: one app registration, one secret, after each re-run.
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

# --create-key, killed: the app registration is found again by its
# uniqueName, and a secret made but never written is removed before a new
# one, so the app never holds more than one.
graph() {
	curl -fsS "$BASE/azure/control/graph" | jq -cS '{apps: [.applications[] | {uniqueName, tags,
		secrets: (.passwordCredentials | length)}], principals: (.service_principals | length)}'
}
keyed() {
	pp provision "$1" -p aci --location westeurope --create-key --credentials az --yes </dev/null >"$T/out" 2>&1
}
lro 0.05
pp provision destroy -p aci --yes </dev/null >"$T/out" 2>&1 || fail "destroy before --create-key: $(cat "$T/out")"
keyed apply || fail "clean keyed apply: $(cat "$T/out")"
kclean=$(state)
gclean=$(graph)
echo "$gclean" | jq -e '.apps[0].secrets == 1 and .principals == 1' >/dev/null || fail "keyed apply: $gclean"
k=0
for delay in $(awk 'BEGIN { srand(22); for (i = 0; i < 4; i++) printf "%.2f\n", 0.6 + rand() * 0.8 }'); do
	k=$((k + 1))
	lro 0.05
	keyed destroy || fail "keyed destroy $k: $(cat "$T/out")"
	[ "$(state)" = "$before" ] && [ "$(graph)" = '{"apps":[],"principals":0}' ] ||
		fail "keyed destroy $k left: $(state) $(graph)"
	lro 0.3
	"$PUSHPOOL" -c "$T/pushpool.conf" provision apply -p aci --location westeurope --create-key \
		--credentials az --yes </dev/null >"$T/killed" 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	lro 0.05
	keyed apply || fail "keyed re-run $k after kill -9 at ${delay}s: $(cat "$T/out")"
	[ "$(state)" = "$kclean" ] && [ "$(graph)" = "$gclean" ] ||
		fail "keyed kill -9 at ${delay}s: $(state) $(graph) != $kclean $gclean"
	[ -s "$T/state/provision/aci/client_secret" ] || fail "keyed re-run $k wrote no secret"
done

echo "ok   provision_azure_kill: $n kill -9 at random points of apply ($interrupted mid-apply), each re-run equal to one clean apply, nothing untagged; $k with --create-key, one app and one secret each time"
