# Sourced by tools/demo.sh and the scenario tests: starts `pushpool mock` on
# a free loopback port with throwaway credentials only it knows, and writes
# $T/pushpool.conf with one pool per provider (cloud-run, ecs, aci, modal)
# pointed at it. Needs PUSHPOOL and T; sets MOCK_PID, BASE and MODAL.
# MOCK_RUN_SECONDS / MOCK_PROVISION_SECONDS set the remote jobs' timeline;
# MOCK_ARGS adds mock flags; DISPATCHER_EXTRA adds [dispatcher] lines.
# Throwaway credentials that only the mock knows.
openssl genrsa -out "$T/key.pem" 2048 2>/dev/null
pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$T/key.pem")
AKID=AKIDDEMO000000000001
AWS_SECRET=demo-aws-secret-key-not-real
AZ_CLIENT=7e0f4a8e-5a38-4b7c-9b6e-1f2d3c4b5a69
AZ_SECRET=demo-azure-client-secret
SUB=00000000-1111-2222-3333-444444444444
printf '%s' "$AZ_SECRET" >"$T/az-secret"
chmod 600 "$T/az-secret"

cat >"$T/sa.json" <<JSON
{"type": "service_account", "project_id": "demo-proj", "private_key_id": "k1",
 "private_key": "$pem", "client_email": "runner@demo-proj.iam.gserviceaccount.com",
 "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}
JSON
chmod 600 "$T/sa.json"

PUSHPOOL_MOCK_AZURE_CLIENTS="$AZ_CLIENT:$AZ_SECRET" PUSHPOOL_MOCK_MODAL_TOKEN=ak-demo:as-demo-secret \
	PUSHPOOL_MOCK_AWS_KEYS="$AKID:$AWS_SECRET" \
	"$PUSHPOOL" mock ${MOCK_ARGS:-} --listen 127.0.0.1:0 --port-file "$T/ports" --seed 1 \
	--provision-seconds "${MOCK_PROVISION_SECONDS:-0.1}" --run-seconds "${MOCK_RUN_SECONDS:-0.3}" \
	--gcp-key "$T/sa.json" >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q '^modal=http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 600 ]; then
		echo "demo: mock did not start:" >&2
		cat "$T/mock.log" >&2
		exit 1
	fi
	sleep 0.05
done
BASE=$(sed -n 's/^url=//p' "$T/ports")
MODAL=$(sed -n 's/^modal=//p' "$T/ports")

cat >"$T/pushpool.conf" <<CONF
[dispatcher]
state_dir = $T/state
status_interval = 0.2
backoff_base_ms = 50
backoff_max_ms = 1000
max_submitting = 32
${DISPATCHER_EXTRA:-}

[credentials "gcp"]
type = gcp
source = file
file = $T/sa.json
token_uri = $BASE/google/token

[credentials "aws"]
type = aws
source = static
access_key_id = $AKID
secret_access_key = $AWS_SECRET
region = us-east-1

[credentials "azure"]
type = azure
source = secret
tenant_id = demo-tenant
client_id = $AZ_CLIENT
client_secret_file = $T/az-secret
subscription_id = $SUB
authority = $BASE/azure

[credentials "modal"]
type = modal
source = token
token_id = ak-demo
token_secret = as-demo-secret

[pool "cloud-run"]
type = cloud-run-v2:push
credentials = gcp
endpoint = $BASE/google
job_variables = {"region": "europe-west1", "image": "repo/flows:1"}

[pool "ecs"]
type = ecs:push
credentials = aws
endpoint = $BASE/aws/ecs
job_variables = {"cluster": "default", "image": "repo/flows:1", "network_configuration": {"subnets": ["subnet-1"], "assignPublicIp": "DISABLED"}}

[pool "aci"]
type = azure-container-instance:push
credentials = azure
endpoint = $BASE/azure
job_variables = {"resource_group_name": "rg-flows", "subscription_id": "$SUB", "image": "repo/flows:1", "task_watch_poll_interval": 0.2}

[pool "modal"]
type = modal:push
credentials = modal
endpoint = $MODAL
job_variables = {"image": "python:3.12-slim", "command": "python -c 'print(42)'"}
CONF
mkdir -p "$T/state"
