#!/bin/sh
# Work pools as Prefect's UI block pickers and `--provision-infra` make
# them, on all four clouds: each template's credentials variable defaults
# to {"$ref": {"block_document_id": ...}} of a credentials block (prefect-aws
# AwsCredentials, prefect-gcp GcpCredentials, prefect-azure
# AzureContainerInstanceCredentials, Modal's modal-credentials), and the
# [pool] sections name no [credentials]: every job authenticates with its
# block's secrets, which never reach the log. The deployments' job
# variables take the flows' plan from a Prefect variable
# ({{ prefect.variables.flow_plan }} = "failed"), so every flow ends FAILED
# as the resolved value says.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
T=$(mktemp -d)
MOCK_PID=
SV=
cleanup() {
	for p in $SV $MOCK_PID; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*"
	for f in "$T/serve.log" "$T/mock.log"; do [ -f "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
	exit 1
}
. "$ROOT/tests/scenario/prefect_lib.inc"
POOLS="cloud-run ecs aci modal"

block() { # SLUG NAME DATA_JSON -> block document id
	jq -n --arg s "$1" --arg n "$2" --argjson d "$3" '{name: $n, block_type_slug: $s, data: $d}' >"$T/block.json"
	pf POST /block_documents/ "@$T/block.json" | jq -r .id
}
# The service account's key itself, its token_uri the mock's.
info=$(jq --arg u "$BASE/google/token" '.token_uri = $u' "$T/sa.json")
GCP=$(block gcp-credentials prod "{\"service_account_info\": $info}")
AWS=$(block aws-credentials prod "{\"aws_access_key_id\":\"$AKID\",\"aws_secret_access_key\":\"$AWS_SECRET\",\"region_name\":\"us-east-1\"}")
AZ=$(block azure-container-instance-credentials prod "{\"client_id\":\"$AZ_CLIENT\",\"tenant_id\":\"demo-tenant\",\"client_secret\":\"$AZ_SECRET\"}")
MODAL_BLOCK=$(block modal-credentials prod '{"token_id":"ak-demo","token_secret":"as-demo-secret"}')
pf POST /variables/ '{"name":"flow_plan","value":"failed"}' >/dev/null

# The pools' templates, with the credentials variable defaulting to the
# block, as the UI writes them.
with_ref() { # POOL VARIABLE BLOCK_ID
	type=$(sed -n "/^\[pool \"$1\"\]/,/^type/s/^type = //p" "$T/pushpool.conf")
	"$PUSHPOOL" template default --type "$type" |
		jq --arg v "$2" --arg id "$3" '.variables.properties[$v].default = {"$ref": {"block_document_id": $id}}' \
			>"$T/template-$1.json"
}
with_ref cloud-run credentials "$GCP"
with_ref ecs aws_credentials "$AWS"
with_ref aci aci_credentials "$AZ"
with_ref modal modal_credentials "$MODAL_BLOCK"
TEMPLATE_cloud_run=$T/template-cloud-run.json TEMPLATE_ecs=$T/template-ecs.json \
	TEMPLATE_aci=$T/template-aci.json TEMPLATE_modal=$T/template-modal.json pf_setup_pools $POOLS
# No [credentials] for any pool: the blocks are the only way in.
sed -i '/^credentials = /d' "$T/pushpool.conf"
: >"$T/ids"
for pool in $POOLS; do
	eval dep=\$DEP_$(echo "$pool" | tr - _)
	for i in 1 2; do
		pf POST "/deployments/$dep/create_flow_run" \
			'{"job_variables":{"env":{"PUSHPOOL_MOCK_FLOW":"{{ prefect.variables.flow_plan }}"}}}' |
			jq -r .id >>"$T/ids"
	done
done
TOTAL=$(wc -l <"$T/ids")

AZURE_AUTHORITY_HOST=$BASE/azure "$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve.log" 2>&1 &
SV=$!
all_failed() { [ "$(pf_count FAILED)" = "$TOTAL" ]; }
wait_for 60 all_failed ||
	fail "flows: $(pf POST /flow_runs/filter '{}' | jq -c '[.[] | "\(.work_pool_name) \(.state_type)"] | group_by(.) | map("\(.[0]) x\(length)")')"
all_with_infra() { [ "$(pf_count_no_pid)" = 0 ]; }
wait_for 30 all_with_infra || fail "$(pf_count_no_pid) of $TOTAL runs have no infrastructure"
pf POST /flow_runs/filter '{}' >"$T/runs.json"
stats >"$T/stats.json"
reads=$(jq '.keyed["prefect.variable_reads"].flow_plan // 0' "$T/stats.json")
[ "$reads" -ge "$TOTAL" ] || fail "flow_plan read $reads times for $TOTAL runs"
for slug in gcp-credentials aws-credentials azure-container-instance-credentials modal-credentials; do
	[ "$(jq --arg s "$slug" '.keyed["prefect.block_reads"][$s] // 0' "$T/stats.json")" -ge 1 ] ||
		fail "block $slug never read"
done
# Every run over in the store too (its job cleaned up) before serve stops.
stored_done() {
	[ "$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls --state SUCCEEDED 2>/dev/null | grep -c -- '-')" = "$TOTAL" ]
}
wait_for 60 stored_done || fail "runs not over in the store: $("$PUSHPOOL" runs -c "$T/pushpool.conf" ls)"
kill -TERM "$SV"
wait "$SV" || fail "serve exited $? on SIGTERM"
SV=
for secret in "$AWS_SECRET" "$AZ_SECRET" as-demo-secret; do
	! grep -qF "$secret" "$T/serve.log" || fail "a block's secret reached the log"
done
echo "ok: $TOTAL runs on four pools authenticated only by \$ref credential blocks; prefect.variables resolved (every flow FAILED as the variable said)"
