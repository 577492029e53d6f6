#!/bin/sh
# pushpool provision for Cloud Run against `pushpool mock`: plan on an empty
# project lists every resource; apply refuses without --yes off a terminal,
# then creates them (the IAM policy read-modify-write meeting a concurrent
# writer twice, and keeping every binding it did not add); a second apply
# and plan change nothing; kill -9 at random points of apply, each followed
# by a re-run, ends where one clean apply does; destroy leaves the project as
# it was and never touches what pushpool did not make; the written drop-in
# alone lets a run go end to end; pool create --provision-infra.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
for cmd in mock provision; do
	if ! "$PUSHPOOL" $cmd --help >/dev/null 2>&1; then
		echo "FAIL: '$PUSHPOOL $cmd --help' does not work" >&2
		exit 1
	fi
done
command -v jq >/dev/null || {
	echo "FAIL: jq is needed" >&2
	exit 1
}
T=$(mktemp -d)
MOCK_PID=
cleanup() {
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

openssl genrsa -out "$T/key.pem" 2048 2>/dev/null
pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$T/key.pem")
write_sa() {
	cat >"$T/sa.json" <<EOF
{"type": "service_account", "project_id": "scenario-proj", "private_key_id": "k1",
 "private_key": "$pem", "client_email": "dispatcher@scenario-proj.iam.gserviceaccount.com",
 "client_id": "1", "token_uri": "$1"}
EOF
}
write_sa "http://127.0.0.1:1/token"
"$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" --seed 5 \
	--provision-seconds 0.1 --run-seconds 0.2 --gcp-key "$T/sa.json" >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q 'http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$T/ports" | head -n 1)
write_sa "$BASE/google/token"

control() {
	curl -fsS -X POST -H 'Content-Type: application/json' -d "$2" "$BASE$1" >/dev/null
}
# Every change the provisioning APIs made, by method.
changes() {
	curl -fsS "$BASE/control/stats" | jq -cS '.keyed.gcp_changes // {}'
}
# The project as a comparable text: enabled services, repositories with
# their labels, service accounts with their descriptions, the bindings.
state() {
	curl -fsS "$BASE/google/control/infra" | jq -cS '{
		services: ([.services[] | select(.state == "ENABLED") | .name] | sort),
		repositories: ([.repositories[] | {name, labels, format}] | sort_by(.name)),
		accounts: ([.service_accounts[] | {email, description}] | sort_by(.email)),
		policies: (.policies | map_values(map({role, members: (.members | sort)})
			| map(select(.members | length > 0)) | sort_by(.role)))}'
}

mkdir -p "$T/state"
cat >"$T/pushpool.conf" <<EOF
[dispatcher]
state_dir = $T/state
status_interval = 0.1
backoff_base_ms = 20
backoff_max_ms = 200

[credentials "gcp"]
type = gcp
source = file
file = $T/sa.json
token_uri = $BASE/google/token

[pool "cr"]
type = cloud-run-v2:push
credentials = gcp
endpoint = $BASE/google
job_variables = {"image": "repo/flows:1"}
EOF
pp() {
	"$PUSHPOOL" -c "$T/pushpool.conf" "$@"
}

# What pushpool did not make, and must keep: a binding of the role it
# grants, a repository and an account without its label, an API enabled
# before it came.
control /google/control/infra \
	'{"binding": {"project": "scenario-proj", "role": "roles/run.developer", "member": "user:alice@example.com"}}'
control /google/control/infra \
	'{"repository": "projects/scenario-proj/locations/us-central1/repositories/team-images", "labels": {"team": "data"}}'
control /google/control/infra \
	'{"service_account": "legacy-jobs@scenario-proj.iam.gserviceaccount.com", "project": "scenario-proj", "description": "made by hand"}'
control /google/control/infra '{"service": "projects/scenario-proj/services/artifactregistry.googleapis.com"}'
before=$(state)

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

# 5. the provisioned pool runs a job end to end with only the written config.
out=$(pp run -p cr --wait) || fail "run --wait failed: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "run did not succeed: $out"

# 6. kill -9 at random points of apply; each re-run ends at the clean state.
control /control/behaviours '{"name": "gcp.lro", "on": true, "seconds": 0.3}'
n=0
interrupted=0
for delay in $(awk 'BEGIN { srand(20); for (i = 0; i < 6; i++) printf "%.2f\n", rand() * 0.9 }'); do
	n=$((n + 1))
	pp provision destroy -p cr --yes </dev/null >"$T/out" 2>&1 || fail "destroy $n: $(cat "$T/out")"
	[ "$(state)" = "$before" ] || fail "destroy $n did not restore the project: $(state)"
	"$PUSHPOOL" -c "$T/pushpool.conf" provision apply -p cr --yes </dev/null >"$T/killed" 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	grep -q '^Wrote' "$T/killed" || interrupted=$((interrupted + 1))
	pp provision apply -p cr --yes </dev/null >"$T/out" 2>&1 ||
		fail "re-run $n after kill -9 at ${delay}s: $(cat "$T/out")"
	[ "$(state)" = "$clean" ] || fail "kill -9 at ${delay}s, re-run $n: $(state) != $clean"
done

# Most kills must land inside the apply, not after it.
[ $interrupted -ge 4 ] || fail "only $interrupted of $n kills interrupted an apply"

# 7. destroy: the project as before; the planted resources untouched.
out=$(pp provision destroy -p cr --yes </dev/null) || fail "destroy failed: $out"
[ "$(state)" = "$before" ] || fail "destroy left: $(state) (before: $before)"
[ ! -f "$dropin" ] || fail "destroy left the drop-in"
rc=0
pp provision plan -p cr >/dev/null || rc=$?
[ $rc -eq 2 ] || fail "plan after destroy exited $rc"

# 8. pool create --provision-infra: the section, then plan and apply.
out=$(pp pool create etl --type cloud-run-v2:push --credentials gcp --endpoint "$BASE/google" \
	--set region=europe-west1 --provision-infra --yes </dev/null) || fail "pool create: $out"
[ -f "$T/pushpool.conf.d/40-pool-etl.conf" ] || fail "no pool section written"
state | jq -e '.accounts[] | select(.email | startswith("pp-etl-run@"))' >/dev/null ||
	fail "pool create did not provision: $(state)"
state | jq -e '.repositories[] | select(.name == "projects/scenario-proj/locations/europe-west1/repositories/pushpool-etl")' >/dev/null ||
	fail "the region was not used: $(state)"
pp provision destroy -p etl --yes </dev/null >/dev/null || fail "destroy etl"
rc=0
pp pool create etl --type cloud-run-v2:push </dev/null >"$T/out" 2>&1 || rc=$?
[ $rc -eq 78 ] || fail "a second pool create etl exited $rc: $(cat "$T/out")"
# 9. --create-key: a dispatcher account of its own with a key file (0600)
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
rm -f "$keyfile"
out=$(pp provision apply -p keyed --create-key --credentials gcp --yes </dev/null) || fail "re-apply after a lost key file: $out"
[ -f "$keyfile" ] && [ "$(live live_gcp_service_account_keys)" -eq 1 ] || fail "lost key file: keys $(live live_gcp_service_account_keys)"
out=$(pp provision destroy -p keyed --credentials gcp --yes </dev/null) || fail "destroy keyed: $out"
[ "$(live live_gcp_service_account_keys)" -eq 0 ] || fail "destroy left keys: $out"
[ ! -e "$T/state/provision/keyed" ] || fail "destroy left the key file"

echo "ok   provision_gcp: plan, apply (IAM RMW under 2 races), idempotent re-apply, $n kill -9 re-runs ($interrupted mid-apply), destroy, run --wait, pool create, --create-key"
