#!/bin/sh
# pushpool provision for Cloud Run against `pushpool mock`: plan on an empty
# project lists every resource; apply refuses without --yes off a terminal,
# then creates them (the IAM policy read-modify-write meeting a concurrent
# writer twice, and keeping every binding it did not add); a second apply
# and plan change nothing; a second apply while one runs waits its turn;
# destroy leaves the project as it was and never touches what pushpool did
# not make; the written drop-in alone lets a run go end to end; pool create
# --provision-infra through injected faults; --create-key and check's
# warning about an old key. (kill -9 during apply: provision_gcp_kill.sh.)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/scenario/provision_gcp.inc"

# 1. plan on an empty project: every resource, exit 2, nothing changed.
rc=0
out=$(pp provision plan -p cr) || rc=$?
[ $rc -eq 2 ] || fail "plan exited $rc, not 2: $out"
for want in 'service +run.googleapis.com +absent +create' \
	'service +artifactregistry.googleapis.com +present +-' \
	'docker-repository +projects/scenario-proj/locations/us-central1/repositories/pushpool-cr +absent +create' \
	'service-account +pp-cr-run@scenario-proj.iam.gserviceaccount.com +absent +create' \
	'iam-binding +roles/run.developer serviceAccount:dispatcher@scenario-proj.iam.gserviceaccount.com +absent +create' \
	'iam-binding +roles/iam.serviceAccountUser serviceAccount:dispatcher@' \
	'iam.serviceAccounts.create' 'resourcemanager.projects.setIamPolicy'; do
	echo "$out" | grep -Eq "$want" || fail "plan lacks /$want/: $out"
done
[ "$(changes)" = "{}" ] || fail "plan changed something: $(changes)"

# 2. apply off a terminal without --yes: refused, nothing changed.
rc=0
pp provision apply -p cr </dev/null >"$T/out" 2>&1 || rc=$?
[ $rc -eq 64 ] || fail "apply without --yes exited $rc: $(cat "$T/out")"
grep -q -- '--yes' "$T/out" || fail "the refusal does not name --yes: $(cat "$T/out")"
[ "$(changes)" = "{}" ] || fail "a refused apply changed something: $(changes)"

# An operation that ends in an error: apply stops there with the cloud's
# words, and the next apply finishes the job.
control /control/faults '{"api": "serviceusage.operation", "error_rate": 1}'
rc=0
pp provision apply -p cr --yes </dev/null >"$T/out" 2>&1 || rc=$?
[ $rc -eq 65 ] || fail "apply through a failed operation exited $rc: $(cat "$T/out")"
grep -q 'FAILED_PRECONDITION: Billing must be enabled for activation' "$T/out" || fail "not the cloud's words: $(cat "$T/out")"
[ "$(changes)" = "{}" ] || fail "a failed enable changed something: $(changes)"
control /control/faults '{"api": "serviceusage.operation", "error_rate": 0}'

# 3. apply, with another writer changing the IAM policy twice under it.
control /google/control/infra '{"race": 2}'
out=$(pp provision apply -p cr --yes </dev/null) || fail "apply failed: $out"
echo "$out" | grep -q '^\[1/5\] create service run.googleapis.com' || fail "no progress lines: $out"
echo "$out" | grep -q '^\[5/5\] create iam-binding' || fail "no last step: $out"
echo "$out" | grep -q "Next: pushpool -c $T/pushpool.conf" || fail "no next command: $out"
after=$(state)
echo "$after" | jq -e '.repositories[] | select(.name | endswith("/pushpool-cr")) | .labels["pushpool-pool"] == "cr"' >/dev/null ||
	fail "the repository is not labelled: $after"
echo "$after" | jq -e '.accounts[] | select(.email | startswith("pp-cr-run@")) | .description | startswith("pushpool-pool=cr")' >/dev/null ||
	fail "the runtime account is not tagged: $after"
members=$(echo "$after" | jq -c '.policies["scenario-proj"]')
for m in user:alice@example.com user:racer-1@example.com user:racer-2@example.com \
	serviceAccount:dispatcher@scenario-proj.iam.gserviceaccount.com; do
	echo "$members" | grep -q "\"$m\"" || fail "binding member $m missing: $members"
done
echo "$members" | jq -e 'map(select(.role == "roles/run.developer"))[0].members | length == 2' >/dev/null ||
	fail "roles/run.developer should hold alice and the dispatcher: $members"
[ "$(changes | jq '.SetIamPolicy')" -eq 2 ] || fail "two bindings, two writes: $(changes)"
dropin="$T/pushpool.conf.d/50-provision-cr.conf"
[ -f "$dropin" ] || fail "no drop-in $dropin"
vars=$(sed -n 's/^job_variables = //p' "$dropin")
echo "$vars" | jq -e '.service_account_name == "pp-cr-run@scenario-proj.iam.gserviceaccount.com" and
	.region == "us-central1" and .credentials.project == "scenario-proj" and .image == "repo/flows:1"' >/dev/null ||
	fail "job variables: $vars"
# The concurrent writer's bindings are part of the project from now on.
before=$(echo "$before" | jq -cS '.policies["scenario-proj"] = (.policies["scenario-proj"] +
	[{role: "roles/viewer", members: ["user:racer-1@example.com"]},
	 {role: "roles/viewer", members: ["user:racer-2@example.com"]}] | sort_by(.role))')
pp check >/dev/null 2>&1 || fail "check refuses the written configuration: $(pp check 2>&1)"

# 4. a second apply and a plan: nothing to do, nothing sent that changes.
c1=$(changes)
out=$(pp provision apply -p cr --yes </dev/null) || fail "second apply failed: $out"
echo "$out" | grep -q 'Nothing to do' || fail "second apply had work: $out"
pp provision plan -p cr >"$T/out" || fail "plan after apply exited $?: $(cat "$T/out")"
[ "$(changes)" = "$c1" ] || fail "counters moved: $c1 -> $(changes)"
clean=$(state)

# Drift: someone disables the runtime account; plan says so, apply enables
# it and changes nothing else.
control /google/control/infra '{"disable_service_account": "pp-cr-run@scenario-proj.iam.gserviceaccount.com"}'
rc=0
out=$(pp provision plan -p cr) || rc=$?
[ $rc -eq 2 ] || fail "plan of a disabled account exited $rc: $out"
echo "$out" | grep -Eq 'service-account +pp-cr-run@.* drifted +update .*disabled: apply enables it' ||
	fail "plan does not show the drift: $out"
c1=$(changes)
out=$(pp provision apply -p cr --yes </dev/null) || fail "apply of the drift: $out"
[ "$(changes | jq -c 'del(.EnableServiceAccount)')" = "$c1" ] || fail "more than the enable: $c1 -> $(changes)"
[ "$(changes | jq '.EnableServiceAccount')" -eq 1 ] || fail "not enabled: $(changes)"
pp provision plan -p cr >/dev/null || fail "plan after the fix exited $?"

# 5. the provisioned pool runs a job end to end with only the written config.
out=$(pp run -p cr --wait) || fail "run --wait failed: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "run did not succeed: $out"

# One apply per pool at a time: a second one while the first runs waits
# its turn (exit 75), changing nothing.
control /control/behaviours '{"name": "gcp.lro", "on": true, "seconds": 0.6}'
pp provision destroy -p cr --yes </dev/null >"$T/out" 2>&1 || fail "destroy before the race: $(cat "$T/out")"
"$PUSHPOOL" -c "$T/pushpool.conf" provision apply -p cr --yes </dev/null >"$T/first" 2>&1 &
pid=$!
i=0
until grep -q '^\[1/' "$T/first"; do
	i=$((i + 1))
	[ $i -gt 400 ] && fail "the first apply never started: $(cat "$T/first")"
	sleep 0.05
done
rc=0
pp provision apply -p cr --yes </dev/null >"$T/out" 2>&1 || rc=$?
[ $rc -eq 75 ] || fail "a second apply at the same time exited $rc: $(cat "$T/out")"
grep -q 'being provisioned by' "$T/out" || fail "no holder named: $(cat "$T/out")"
wait $pid || fail "the first apply failed: $(cat "$T/first")"
[ "$(state)" = "$clean" ] || fail "after the raced apply: $(state)"
control /control/behaviours '{"name": "gcp.lro", "on": true, "seconds": 0.2}'

# 6. destroy: the project as before; the planted resources untouched.
out=$(pp provision destroy -p cr --yes </dev/null) || fail "destroy failed: $out"
[ "$(state)" = "$before" ] || fail "destroy left: $(state) (before: $before)"
[ ! -f "$dropin" ] || fail "destroy left the drop-in"
rc=0
pp provision plan -p cr >/dev/null || rc=$?
[ $rc -eq 2 ] || fail "plan after destroy exited $rc"

# 7. pool create --provision-infra: the section, then plan and apply,
# through throttling and 5xx on every provisioning API.
curl -fsS -X POST -H 'Content-Type: application/json' -d '[
	{"api": "serviceusage", "throttle_rate": 0.3, "error_rate": 0.1, "retry_after": 0},
	{"api": "iam", "throttle_rate": 0.3, "error_rate": 0.1, "retry_after": 0},
	{"api": "cloudresourcemanager", "throttle_rate": 0.3, "error_rate": 0.1, "retry_after": 0},
	{"api": "artifactregistry", "throttle_rate": 0.3, "error_rate": 0.1, "retry_after": 0}]' "$BASE/control/faults" >/dev/null
out=$(pp pool create etl --type cloud-run-v2:push --credentials gcp --endpoint "$BASE/google" \
	--set region=europe-west1 --provision-infra --yes </dev/null) || fail "pool create: $out"
[ -f "$T/pushpool.conf.d/40-pool-etl.conf" ] || fail "no pool section written"
state | jq -e '.accounts[] | select(.email | startswith("pp-etl-run@"))' >/dev/null ||
	fail "pool create did not provision: $(state)"
state | jq -e '.repositories[] | select(.name == "projects/scenario-proj/locations/europe-west1/repositories/pushpool-etl")' >/dev/null ||
	fail "the region was not used: $(state)"
pp provision destroy -p etl --yes </dev/null >/dev/null || fail "destroy etl"
injected=$(curl -fsS "$BASE/control/stats" | jq '[.keyed.injected // {} | to_entries[] |
	select(.key | test("^(serviceusage|iam|cloudresourcemanager|artifactregistry)")) | .value] | add // 0')
[ "$injected" -gt 0 ] || fail "no fault was injected"
curl -fsS -X POST -H 'Content-Type: application/json' -d '[
	{"api": "serviceusage", "throttle_rate": 0, "error_rate": 0},
	{"api": "iam", "throttle_rate": 0, "error_rate": 0},
	{"api": "cloudresourcemanager", "throttle_rate": 0, "error_rate": 0},
	{"api": "artifactregistry", "throttle_rate": 0, "error_rate": 0}]' "$BASE/control/faults" >/dev/null
rc=0
pp pool create etl --type cloud-run-v2:push </dev/null >"$T/out" 2>&1 || rc=$?
[ $rc -eq 78 ] || fail "a second pool create etl exited $rc: $(cat "$T/out")"
# 8. --create-key: a dispatcher account of its own with a key file (0600)
# that runs a job; a key whose file was lost is replaced, never leaked.
out=$(pp pool create keyed --type cloud-run-v2:push --credentials gcp --endpoint "$BASE/google" \
	--provision-infra --create-key --yes </dev/null) || fail "pool create --create-key: $out"
echo "$out" | grep -q 'create service-account-key pp-keyed-dsp@' || fail "no key step: $out"
keyfile="$T/state/provision/keyed/key.json"
[ "$(stat -c %a "$keyfile")" = 600 ] || fail "key file mode $(stat -c %a "$keyfile" 2>&1)"
[ "$(stat -c %a "$T/state/provision/keyed")" = 700 ] || fail "key directory mode"
grep -q '^\[credentials "keyed-provisioned"\]' "$T/pushpool.conf.d/50-provision-keyed.conf" ||
	fail "no credentials section: $(cat "$T/pushpool.conf.d/50-provision-keyed.conf")"
live() {
	curl -fsS "$BASE/control/stats" | jq ".live.$1"
}
[ "$(live live_gcp_service_account_keys)" -eq 1 ] || fail "keys: $(live live_gcp_service_account_keys)"
curl -fsS "$BASE/google/control/infra" | jq -e '.policies["scenario-proj"][] | select(.role == "roles/run.developer") |
	.members | index("serviceAccount:pp-keyed-dsp@scenario-proj.iam.gserviceaccount.com")' >/dev/null ||
	fail "the new account was not granted"
out=$(pp run -p keyed --wait) || fail "run with the new key: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "run with the new key did not succeed: $out"
# check warns about a key apply wrote once it is old.
pp check >"$T/out" 2>&1 || fail "check: $(cat "$T/out")"
grep -q 'days old' "$T/out" && fail "a new key is called old: $(cat "$T/out")"
touch -d '100 days ago' "$keyfile"
pp check >"$T/out" 2>&1 || fail "check with an old key: $(cat "$T/out")"
grep -q "warning: credentials \"keyed-provisioned\": key file $keyfile made by .pushpool provision apply. is 100 days old" "$T/out" ||
	fail "no warning about the old key: $(cat "$T/out")"
rm -f "$keyfile"
out=$(pp provision apply -p keyed --create-key --credentials gcp --yes </dev/null) || fail "re-apply after a lost key file: $out"
[ -f "$keyfile" ] && [ "$(live live_gcp_service_account_keys)" -eq 1 ] || fail "lost key file: keys $(live live_gcp_service_account_keys)"
out=$(pp provision destroy -p keyed --credentials gcp --yes </dev/null) || fail "destroy keyed: $out"
[ "$(live live_gcp_service_account_keys)" -eq 0 ] || fail "destroy left keys: $out"
[ ! -e "$T/state/provision/keyed" ] || fail "destroy left the key file"

echo "ok   provision_gcp: plan, a failed operation, apply (IAM RMW under 2 races), idempotent re-apply, a disabled account drifted and enabled, run --wait, one apply at a time, destroy, pool create under faults, --create-key, old-key warning"
