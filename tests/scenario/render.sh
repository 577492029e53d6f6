#!/bin/sh
# `pushpool template default` and `pushpool render`: every pool type, job
# variables from -v, --vars and the config, redaction, and the exit codes
# for bad input.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
for cmd in render template; do
	# A missing command (or pushpool-mock missing beside the binary) is a
	# failure, not a skip: the test would otherwise pass without running.
	if ! "$PUSHPOOL" $cmd --help >/dev/null 2>&1; then
		echo "FAIL: '$PUSHPOOL $cmd --help' does not work" >&2
		exit 1
	fi
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
# expect STATUS TEXT CMD...: CMD exits with STATUS and its stderr has TEXT.
expect() {
	want=$1 text=$2
	shift 2
	set +e
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	set -e
	[ "$got" = "$want" ] || fail "$* exited $got, expected $want: $(cat "$T/err")"
	grep -qF -- "$text" "$T/err" || fail "$*: stderr lacks '$text': $(cat "$T/err")"
}
has() {
	grep -qF -- "$1" "$T/out" || fail "output lacks '$1': $(cat "$T/out")"
}

# Each default template prints, and renders again when given back as a file.
for type in cloud-run-v2:push ecs:push azure-container-instance:push modal:push \
	cloud-run-v2 ecs azure-container-instance; do
	"$PUSHPOOL" template default --type "$type" >"$T/tpl.json" || fail "template default $type"
	grep -q '"job_configuration"' "$T/tpl.json" || fail "$type: no job_configuration"
	case $type in
	azure*) set -- -v resource_group_name=rg -v subscription_id=sub-0000 ;;
	*) set -- ;;
	esac
	"$PUSHPOOL" render --template "$T/tpl.json" "$@" >"$T/out" 2>"$T/err" ||
		fail "render $type: $(cat "$T/err")"
	has '"command": "prefect flow-run execute"'
done
expect 64 'unknown pool type "kubernetes"' "$PUSHPOOL" template default --type kubernetes
grep -qF 'ecs:push' "$T/err" || fail "unknown type: the list of types is missing"
expect 64 'expected the subcommand "default"' "$PUSHPOOL" template show

# Defaults, -v overrides and the values Prefect injects.
"$PUSHPOOL" render --type ecs -v cpu=1024 -v memory=2048 -v image=repo/flow:1 \
	-v 'env={"MODE": "prod"}' --run-id 11111111-2222-4333-8444-555555555555 \
	--run-name brave-otter >"$T/out"
has '"launchType": "FARGATE"'
has '"cpu": 1024'
has '"image": "repo/flow:1"'
has '"MODE": "prod"'
has '"PREFECT__FLOW_RUN_ID": "11111111-2222-4333-8444-555555555555"'
has '"prefect.io/flow-run-name": "brave-otter"'
has '"name": "brave-otter"'
has '"command": "prefect flow-run execute"'

# --vars from a file and from stdin; -v wins over --vars.
printf '{"cpu": "2", "memory": "4Gi", "keep_job": true}\n' >"$T/vars.json"
"$PUSHPOOL" render --type cloud-run-v2:push --vars "$T/vars.json" -v 'memory="8Gi"' >"$T/out"
has '"memory": "8Gi"'
has '"cpu": "2"'
has '"keep_job": true'
printf '{"gpu": "T4"}' | "$PUSHPOOL" render --type modal:push --vars - >"$T/out"
has '"gpu": "T4"'
has '"memory": 128'

# Secrets never reach the output: ACI's subscription_id is write-only.
"$PUSHPOOL" render --type azure-container-instance -v resource_group_name=rg \
	-v subscription_id=sub-7f3e9a1c-secret >"$T/out"
has '"subscription_id": "[REDACTED]"'
! grep -q 'sub-7f3e9a1c-secret' "$T/out" || fail "subscription id leaked"

# Bad input: one clear message and the sysexits status.
expect 65 'job variable "cpu": expected integer, got string "abc"' \
	"$PUSHPOOL" render --type ecs -v cpu=abc
expect 65 'job variable "cpuu" (run): not defined in the template' \
	"$PUSHPOOL" render --type ecs -v cpuu=1
expect 65 'job variable "launch_type": string "FARGATE_X" is not one of' \
	"$PUSHPOOL" render --type ecs -v launch_type=FARGATE_X
expect 65 'job variable "timeout": 0 must be greater than 0' \
	"$PUSHPOOL" render --type cloud-run-v2 -v timeout=0
expect 65 'job variable "resource_group_name": required' \
	"$PUSHPOOL" render --type azure-container-instance
printf '{\n  "job_configuration": {"a": 1,}\n}\n' >"$T/bad.json"
expect 65 "$T/bad.json:2:" "$PUSHPOOL" render --template "$T/bad.json"
printf '{"job_configuration": {}}' >"$T/nv.json"
expect 65 '"variables" is missing' "$PUSHPOOL" render --template "$T/nv.json"
expect 66 "$T/missing.json" "$PUSHPOOL" render --template "$T/missing.json"
expect 66 "$T/none.json" "$PUSHPOOL" render --type ecs --vars "$T/none.json"
printf '[1]' >"$T/arr.json"
expect 65 'job variables must be a JSON object' "$PUSHPOOL" render --type ecs --vars "$T/arr.json"
expect 64 'give -p POOL, --type TYPE or --template FILE' "$PUSHPOOL" render
expect 64 'unknown pool type' "$PUSHPOOL" render --type nope
expect 64 'expected key=value' "$PUSHPOOL" render --type ecs -v cpu
expect 64 'unexpected argument' "$PUSHPOOL" render --type ecs extra

# A pool from the config: its type, its job variables under the run's, and
# the API key file, which is a secret.
printf 'pnu_scenario_key_0123456789\n' >"$T/api.key"
cat >"$T/pushpool.conf" <<EOF
[dispatcher]
state_dir = $T/state
prefect_api_url = http://127.0.0.1:4200/api
prefect_api_key_file = $T/api.key

[pool "etl"]
type = ecs
job_variables = {"cpu": 512, "env": {"FROM_POOL": "1", "SHARED": "pool"}}
EOF
"$PUSHPOOL" render -p etl -c "$T/pushpool.conf" -v 'env={"SHARED": "run"}' >"$T/out" 2>"$T/err" ||
	fail "render -p etl: $(cat "$T/err")"
has '"cpu": 512'
has '"FROM_POOL": "1"'
has '"SHARED": "run"'
has '"PREFECT_API_URL": "http://127.0.0.1:4200/api"'
has '"PREFECT_API_KEY": "[REDACTED]"'
has '"prefect.io/work-pool-name": "etl"'
! grep -q pnu_scenario_key "$T/out" || fail "API key leaked"
PUSHPOOL_CONFIG="$T/pushpool.conf" "$PUSHPOOL" render -p etl >/dev/null ||
	fail "render -p with \$PUSHPOOL_CONFIG"
expect 78 'no [pool "nope"] section' "$PUSHPOOL" render -p nope -c "$T/pushpool.conf"
expect 66 "$T/absent.conf" "$PUSHPOOL" render -p etl -c "$T/absent.conf"
expect 64 '--request needs -p' "$PUSHPOOL" render --type ecs:push --request

# --request: the exact HTTP requests, nothing sent, no secret shown.
R=$T/req
mkdir -p "$R"
(
	T=$R
	MOCK_ARGS="--seed 2"
	. "$(pwd)/tools/mock-env.sh"
	trap 'kill $MOCK_PID 2>/dev/null' EXIT
	for pool in cloud-run ecs aci modal; do
		"$PUSHPOOL" render -c "$R/pushpool.conf" -p "$pool" --request >"$R/$pool.out" 2>"$R/$pool.err" ||
			{ echo "FAIL: render --request -p $pool: $(cat "$R/$pool.err")"; exit 1; }
	done
	curl -fsS "$BASE/control/stats" >"$R/stats.json"
)
grep -q '^POST .*/jobs?jobId=pp-00000000000040008000000000000000-1$' "$R/cloud-run.out" || fail "cloud-run: no CreateJob"
grep -q '^# [0-9]* RunTask$' "$R/ecs.out" && grep -q '"clientToken": "pp-' "$R/ecs.out" || fail "ecs: no RunTask with clientToken"
grep -q '^PUT .*/containerGroups/pp-' "$R/aci.out" && grep -q '"restartPolicy": "Never"' "$R/aci.out" || fail "aci: no PUT"
grep -q '^POST .*/modal.client.ModalClient/' "$R/modal.out" || fail "modal: no gRPC call"
! grep -q 'demo-aws-secret-key-not-real\|as-demo-secret\|demo-azure-client-secret' "$R"/*.out || fail "a secret leaked"
[ "$(jq -r '[.keyed.requests // {} | to_entries[] | select(.key | test("^control") | not)] | length' "$R/stats.json")" = 0 ] ||
	fail "render --request reached the mock: $(jq -c .keyed.requests "$R/stats.json")"
echo "render scenario: ok"
