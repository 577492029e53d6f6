#!/bin/sh
# pushpool provision for Azure Container Instances against `pushpool mock`:
# plan on an empty subscription lists every resource; apply registers the
# resource providers, makes the resource group, the jobs' identity, the
# registry, AcrPull and the dispatcher's least role (assignments retried
# while the new identity replicates), each tagged in its PUT; a second
# apply and plan change nothing; the written drop-in alone runs a job end
# to end; destroy leaves the subscription as it was and never touches what
# pushpool did not make; --contributor; faults on every provisioning call.
# (kill -9 during apply: provision_azure_kill.sh.)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/scenario/provision_azure.inc"

# 1. plan on an empty subscription: every resource, exit 2, nothing changed.
rc=0
out=$(pp provision plan -p aci --location westeurope) || rc=$?
[ $rc -eq 2 ] || fail "plan exited $rc, not 2: $out"
for want in 'resource-provider +Microsoft.ContainerInstance +present +- .*registered before pushpool: kept' \
	'resource-provider +Microsoft.ManagedIdentity +absent +create' \
	'resource-provider +Microsoft.ContainerRegistry +absent +create' \
	"resource-group +/subscriptions/$SUB/resourceGroups/pushpool-aci +absent +create" \
	'managed-identity +pushpool-aci-jobs +absent +create' \
	'container-registry +ppaci[0-9a-f]{8} +absent +create' \
	'role-assignment +AcrPull on ppaci[0-9a-f]{8} for pushpool-aci-jobs +absent +create' \
	'role-definition +[0-9a-f-]{36} +absent +create' \
	'role-assignment +pushpool dispatcher role on pushpool-aci for ServicePrincipal [0-9a-f-]{36} +absent +create' \
	'Microsoft.Authorization/roleAssignments/write' 'Microsoft.Resources/subscriptions/resourceGroups/write'; do
	echo "$out" | grep -Eq "$want" || fail "plan lacks /$want/: $out"
done
[ "$(changes)" = "{}" ] || fail "plan changed something: $(changes)"
# Without a location anywhere, the group cannot be planned.
rc=0
pp provision plan -p aci >"$T/out" 2>&1 || rc=$?
[ $rc -eq 65 ] || fail "plan without a location exited $rc: $(cat "$T/out")"
grep -q -- '--location' "$T/out" || fail "the error does not name --location: $(cat "$T/out")"

# 2. apply (the new identity's principal replicates 0.3 s after it is made:
# the AcrPull assignment meets PrincipalNotFound first and is retried).
out=$(pp provision apply -p aci --location westeurope --yes </dev/null) || fail "apply failed: $out"
echo "$out" | grep -q '^\[1/8\] create resource-provider Microsoft.ManagedIdentity' || fail "no progress lines: $out"
echo "$out" | grep -q '^\[8/8\] create role-assignment pushpool dispatcher role' || fail "no last step: $out"
echo "$out" | grep -q "Next: pushpool -c $T/pushpool.conf" || fail "no next command: $out"
[ "$(curl -fsS "$BASE/control/stats" | jq '.keyed.rejects.PrincipalNotFound // 0')" -ge 1 ] ||
	fail "the replication delay was never met"
after=$(state)
for kind in groups identities registries; do
	echo "$after" | jq -e ".$kind[] | select(.id | contains(\"/pushpool-aci\")) | .tags[\"pushpool-pool\"] == \"aci\"" >/dev/null ||
		fail "$kind: not tagged at creation: $after"
done
echo "$after" | jq -e '.groups[] | select(.id | endswith("/pushpool-aci")) | .location == "westeurope"' >/dev/null ||
	fail "the group is not in the location asked for: $after"
echo "$after" | jq -e '[.assignments[] | select(.type == "ServicePrincipal")] | length == 2' >/dev/null ||
	fail "two assignments with principalType: $after"
echo "$after" | jq -e '.roles[0].actions | index("Microsoft.ContainerInstance/containerGroups/write")' >/dev/null ||
	fail "the custom role lacks the ACI actions: $after"
[ "$(changes | jq '.Providers_Register')" -eq 2 ] || fail "two providers to register: $(changes)"
dropin="$T/pushpool.conf.d/50-provision-aci.conf"
vars=$(sed -n 's/^job_variables = //p' "$dropin")
echo "$vars" | jq -e --arg sub "$SUB" '.subscription_id == $sub and .resource_group_name == "pushpool-aci" and
	(.identities[0] | endswith("/userAssignedIdentities/pushpool-aci-jobs")) and
	(.image_registry.registry_url | test("^ppaci[0-9a-f]{8}\\.azurecr\\.io$")) and
	.image_registry.identity == .identities[0] and .image == "repo/flows:1"' >/dev/null ||
	fail "job variables: $vars"
pp check >/dev/null 2>&1 || fail "check refuses the written configuration: $(pp check 2>&1)"

# 3. a second apply and a plan: nothing to do, nothing sent that changes.
c1=$(changes)
out=$(pp provision apply -p aci --yes </dev/null) || fail "second apply failed: $out"
echo "$out" | grep -q 'Nothing to do' || fail "second apply had work: $out"
pp provision plan -p aci >"$T/out" || fail "plan after apply exited $?: $(cat "$T/out")"
[ "$(changes)" = "$c1" ] || fail "counters moved: $c1 -> $(changes)"
[ "$(state)" = "$after" ] || fail "the subscription moved: $(state)"

# 4. the provisioned pool runs a job end to end with only the written config.
out=$(pp run -p aci --wait) || fail "run --wait failed: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "run did not succeed: $out"

# 5. destroy: the subscription as before; the planted resources untouched.
out=$(pp provision destroy -p aci --yes </dev/null) || fail "destroy failed: $out"
[ "$(state)" = "$before" ] || fail "destroy left: $(state) (before: $before)"
[ ! -f "$dropin" ] || fail "destroy left the drop-in"
rc=0
pp provision plan -p aci --location westeurope >/dev/null || rc=$?
[ $rc -eq 2 ] || fail "plan after destroy exited $rc"

# An asynchronous operation that ends Failed: apply stops there with the
# cloud's words and no registry; the next apply finishes the job.
control /control/faults '{"api": "arminfra.operation", "error_rate": 1}'
rc=0
pp provision apply -p aci --location westeurope --yes </dev/null >"$T/out" 2>&1 || rc=$?
control /control/faults '{"api": "arminfra.operation", "error_rate": 0}'
[ $rc -eq 65 ] || fail "apply through a failed operation exited $rc: $(cat "$T/out")"
grep -q 'operation Failed: QuotaExceeded: The subscription has reached its limit' "$T/out" ||
	fail "not the cloud's words: $(cat "$T/out")"
state | jq -e '[.registries[] | select(.id | contains("/pushpool-aci/"))] | length == 0' >/dev/null ||
	fail "a failed create left a registry: $(state)"
pp provision apply -p aci --yes </dev/null >"$T/out" 2>&1 || fail "apply after the failed operation: $(cat "$T/out")"
[ "$(state)" = "$after" ] || fail "after the failed operation and a re-run: $(state) != $after"
pp provision destroy -p aci --yes </dev/null >"$T/out" 2>&1 || fail "destroy: $(cat "$T/out")"
[ "$(state)" = "$before" ] || fail "destroy left: $(state)"

# 6. a foreign registry holding the name: apply stops before its first
# change; the pool's team group is used as it is and kept by destroy.
reg=$(echo "$after" | jq -r '.registries[] | select(.id | contains("/pushpool-aci/")) | .id | sub(".*/"; "")')
control /azure/control/infra "{\"resource_group\": {\"subscription\": \"$SUB\", \"name\": \"pushpool-aci\", \"location\": \"westeurope\"}}"
control /azure/control/infra "{\"registry\": {\"subscription\": \"$SUB\", \"resource_group\": \"pushpool-aci\", \"name\": \"$reg\", \"location\": \"westeurope\"}}"
c1=$(changes)
rc=0
pp provision apply -p aci --yes </dev/null >"$T/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "apply over a foreign registry succeeded: $(cat "$T/out")"
grep -Eq "container-registry +$reg +foreign +blocked" "$T/out" || fail "the foreign registry is not shown: $(cat "$T/out")"
[ "$(changes)" = "$c1" ] || fail "a blocked apply changed something: $(changes)"
out=$(pp provision destroy -p aci --yes </dev/null) || fail "destroy with foreign objects: $out"
state | jq -e ".registries[] | select(.id | endswith(\"/$reg\"))" >/dev/null || fail "destroy removed a foreign registry"
state | jq -e '.groups[] | select(.id | endswith("/pushpool-aci"))' >/dev/null || fail "destroy removed a foreign group"

# 7. --contributor, through throttling (Retry-After: 1) and 5xx on the calls,
# in a group of the pool's own naming.
control /control/faults '{"api": "arminfra", "throttle_rate": 0.1, "error_rate": 0.2, "retry_after": 0}'
out=$(pp pool create etl --type azure-container-instance:push --credentials az --endpoint "$BASE/azure" \
	--set resource_group_name=etl-rg --location northeurope --contributor --provision-infra --yes </dev/null) ||
	fail "pool create: $out"
control /control/faults '{"api": "arminfra", "throttle_rate": 0, "error_rate": 0}'
echo "$out" | grep -q 'create role-assignment Contributor on etl-rg' || fail "no Contributor grant: $out"
echo "$out" | grep -q 'role-definition' && fail "--contributor made a custom role: $out"
state | jq -e '.assignments[] | select(.role | endswith("/b24988ac-6180-42a0-ab88-20f7382dd24c")) | .scope | endswith("/resourcegroups/etl-rg")' >/dev/null ||
	fail "Contributor was not granted on etl-rg: $(state)"
injected=$(curl -fsS "$BASE/control/stats" | jq '[.keyed.injected // {} | to_entries[] | select(.key | test("^arminfra")) | .value] | add // 0')
[ "$injected" -gt 0 ] || fail "no fault was injected"
pp provision destroy -p etl --yes </dev/null >/dev/null || fail "destroy etl"
state | jq -e '[.groups[] | select(.id | endswith("/etl-rg"))] | length == 0' >/dev/null || fail "etl-rg left: $(state)"

# 7b. the team's own group, where an administrator already granted the
# dispatcher Contributor: the group is used and kept, the grant is shown as
# there and not ours, and destroy takes only what apply made in the group.
oid=$(pp provision plan -p aci --location westeurope | grep -o 'for ServicePrincipal [0-9a-f-]*' | head -n 1 | cut -d' ' -f3) || true
[ -n "$oid" ] || fail "no dispatcher principal in the plan"
control /azure/control/infra "{\"role_assignment\": {\"scope\": \"/subscriptions/$SUB/resourceGroups/team-rg\",
	\"name\": \"0f0e0d0c-0b0a-4909-8807-060504030201\", \"principal\": \"$oid\", \"type\": \"ServicePrincipal\",
	\"role\": \"/subscriptions/$SUB/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c\"}}"
team=$(state)
out=$(pp pool create team --type azure-container-instance:push --credentials az --endpoint "$BASE/azure" \
	--set resource_group_name=team-rg --contributor --provision-infra --yes </dev/null) || fail "pool create team: $out"
echo "$out" | grep -Eq 'resource-group +/subscriptions/.*/team-rg +present +- .*made before pushpool: used, kept' ||
	fail "the team's group is not shown as kept: $out"
echo "$out" | grep -Eq "role-assignment +Contributor on team-rg for ServicePrincipal $oid +present +- .*granted before pushpool" ||
	fail "the existing grant is not shown: $out"
state | jq -e '.identities[] | select(.id | endswith("/team-rg/providers/microsoft.managedidentity/userassignedidentities/pushpool-team-jobs"))' >/dev/null ||
	fail "no identity in the team's group: $(state)"
out=$(pp provision destroy -p team --yes </dev/null) || fail "destroy team: $out"
[ "$(state)" = "$team" ] || fail "destroy in the team's group left: $(state) (before: $team)"

# Graph takes only Graph tokens (and ARM only ARM's): apply's Graph calls
# below pass because the credential asked Entra for Graph's scope.
arm_token=$(curl -fsS -d "grant_type=client_credentials&client_id=$CLIENT&client_secret=$SECRET&scope=https://management.azure.com/.default" \
	"$BASE/azure/scenario-tenant/oauth2/v2.0/token" | jq -r .access_token)
code=$(curl -s -o "$T/out" -w '%{http_code}' -H "Authorization: Bearer $arm_token" \
	"$BASE/azure/graph/v1.0/applications(uniqueName='x')")
[ "$code" = 401 ] && grep -q 'Invalid audience' "$T/out" || fail "Graph took an ARM token: $code $(cat "$T/out")"

# 8. --create-key: an app registration of its own through Microsoft Graph,
# tagged, with one client secret written 0600 and its expiry recorded; the
# written credentials run a job; check warns 30 days before the secret ends;
# a secret whose file was lost is replaced, never leaked; destroy removes
# the app.
graph() {
	curl -fsS "$BASE/azure/control/graph"
}
out=$(pp pool create keyed --type azure-container-instance:push --credentials az --endpoint "$BASE/azure" \
	--location westeurope --set image=repo/flows:1 --provision-infra --create-key --yes </dev/null) || fail "pool create --create-key: $out"
echo "$out" | grep -q 'create client-secret of pushpool-keyed-' || fail "no secret step: $out"
echo "$out" | grep -Eq 'create role-assignment pushpool dispatcher role on pushpool-keyed for ServicePrincipal of pushpool-keyed-' ||
	fail "the app was not granted: $out"
secret="$T/state/provision/keyed/client_secret"
[ "$(stat -c %a "$secret")" = 600 ] || fail "secret file mode $(stat -c %a "$secret" 2>&1)"
kd="$T/pushpool.conf.d/50-provision-keyed.conf"
grep -q '^\[credentials "keyed-provisioned"\]' "$kd" || fail "no credentials section: $(cat "$kd")"
expires=$(sed -n 's/^client_secret_expires = //p' "$kd")
[ -n "$expires" ] || fail "no client_secret_expires: $(cat "$kd")"
graph | jq -e '.applications | length == 1 and (.[0].tags | index("pushpool-pool=keyed")) and
	(.[0].passwordCredentials | length == 1)' >/dev/null || fail "graph: $(graph)"
grep -q "$(cat "$secret")" "$T/mock.log" && fail "the secret reached the mock's log"
out=$(pp run -p keyed --wait) || fail "run with the new app's secret: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "run with the new secret did not succeed: $out"
pp check >"$T/out" 2>&1 || fail "check: $(cat "$T/out")"
grep -q 'client secret expire' "$T/out" && fail "a new secret is called expiring: $(cat "$T/out")"
soon=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
sed -i "s/^client_secret_expires = .*/client_secret_expires = $soon/" "$kd"
pp check >"$T/out" 2>&1 || fail "check with an expiring secret: $(cat "$T/out")"
grep -q "warning: credentials \"keyed-provisioned\": the client secret expires on $soon, in [0-9]* days" "$T/out" ||
	fail "no warning about the expiring secret: $(cat "$T/out")"
rm -f "$secret"
out=$(pp provision apply -p keyed --create-key --credentials az --yes </dev/null) || fail "re-apply after a lost secret: $out"
[ -f "$secret" ] || fail "no new secret file"
graph | jq -e '.applications[0].passwordCredentials | length == 1' >/dev/null || fail "a secret leaked: $(graph)"
c1=$(changes)
out=$(pp provision apply -p keyed --create-key --credentials az --yes </dev/null) || fail "re-apply keyed: $out"
echo "$out" | grep -q 'Nothing to do' || fail "keyed re-apply had work: $out"
out=$(pp provision destroy -p keyed --credentials az --yes </dev/null) || fail "destroy keyed: $out"
graph | jq -e '.applications | length == 0' >/dev/null || fail "destroy left the app: $(graph)"
[ ! -e "$T/state/provision/keyed" ] || fail "destroy left the secret file"

echo "ok   provision_azure: plan, apply (providers registered, PrincipalNotFound retried), idempotent re-apply, run --wait, destroy to the subscription as before, a failed operation, a foreign registry blocks and stays, --contributor under faults, a team's group and grant kept, --create-key through Graph and check's expiry warning"
