#!/bin/sh
# Entra ID credentials against the mock's Azure module: client secret,
# certificate (RS256 client assertion) and managed identity through
# `pushpool auth check`, a rejected secret (exit 77, AADSTS text, secret not
# shown), and an ACI run authenticated with the certificate.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
for cmd in mock run auth; do
	# A missing command (or pushpool-mock missing beside the binary) is a
	# failure, not a skip: the test would otherwise pass without running.
	if ! "$PUSHPOOL" $cmd --help >/dev/null 2>&1; then
		echo "FAIL: '$PUSHPOOL $cmd --help' does not work" >&2
		exit 1
	fi
done
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

SECRET_CLIENT=3b9e6f0a-1c2d-4e5f-8a9b-0c1d2e3f4a01
CERT_CLIENT=3b9e6f0a-1c2d-4e5f-8a9b-0c1d2e3f4a02
SECRET=aci-auth-secret-value
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
	-subj /CN=pushpool-aci >/dev/null 2>&1
cat "$T/key.pem" "$T/cert.pem" >"$T/client.pem"
PUSHPOOL_MOCK_AZURE_CLIENTS="$SECRET_CLIENT:$SECRET" \
	PUSHPOOL_MOCK_AZURE_CERTS="$CERT_CLIENT:$T/cert.pem" \
	"$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" --provision-seconds 0.1 \
	--run-seconds 0.3 >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q 'http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$T/ports" | head -n 1)
SUB=9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d

printf '%s' "$SECRET" >"$T/secret"
printf '%s' "not-$SECRET" >"$T/wrong"
cat >"$T/pushpool.conf" <<EOF
[dispatcher]
status_interval = 0.1

[credentials "secret"]
type = azure
source = secret
tenant_id = t1
client_id = $SECRET_CLIENT
client_secret_file = $T/secret
authority = $BASE/azure

[credentials "wrong"]
type = azure
source = secret
tenant_id = t1
client_id = $SECRET_CLIENT
client_secret_file = $T/wrong
authority = $BASE/azure

[credentials "cert"]
type = azure
source = certificate
tenant_id = t1
client_id = $CERT_CLIENT
certificate_path = $T/client.pem
subscription_id = $SUB
authority = $BASE/azure

[credentials "mi"]
type = azure
source = managed_identity
imds_endpoint = $BASE

[pool "aci"]
type = azure-container-instance:push
credentials = cert
endpoint = $BASE/azure
job_variables = {"resource_group_name": "rg-auth", "subscription_id": "$SUB", "image": "repo/flows:1", "task_watch_poll_interval": 0.1}
EOF
check() {
	"$PUSHPOOL" auth check "$1" -c "$T/pushpool.conf"
}

for c in secret cert mi; do
	out=$(check $c 2>&1) || fail "auth check $c failed: $out"
done
rc=0
out=$(check wrong 2>&1) || rc=$?
[ $rc -eq 77 ] || fail "a wrong secret gave exit $rc: $out"
echo "$out" | grep -q AADSTS7000215 || fail "no AADSTS code in: $out"
echo "$out" | grep -q "$SECRET" && fail "the secret was printed: $out"

out=$("$PUSHPOOL" run -c "$T/pushpool.conf" -p aci --wait 2>&1) || fail "cert run failed: $out"
echo "$out" | grep -q "^/subscriptions/$SUB/resourceGroups/rg-auth/" || fail "no group id in: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "no SUCCEEDED in: $out"
stats=$(curl -fsS "$BASE/control/stats" | tr -d ' \n')
echo "$stats" | grep -q "\"$CERT_CLIENT\":[1-9]" || fail "no token for the cert client: $stats"
echo "ok"
