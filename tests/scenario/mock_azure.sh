#!/bin/sh
# The mock's Azure module with curl: Entra client secret and RS256 client
# assertion grants and their AADSTS errors, IMDS, bearer checks, ARM
# containerGroups create/get/delete with async operations, name rules,
# the timeline and the failure markers.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
# A missing mock is a failure, not a skip: the test would otherwise pass
# without running.
if ! "$PUSHPOOL" mock --help >/dev/null 2>&1; then
	echo "FAIL: '$PUSHPOOL mock --help' does not work (is pushpool-mock beside it?)" >&2
	exit 1
fi
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

SECRET_CLIENT=0a1b2c3d-0000-4000-8000-000000000001
CERT_CLIENT=0a1b2c3d-0000-4000-8000-000000000002
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
	-subj /CN=pushpool-test >/dev/null 2>&1
PUSHPOOL_MOCK_AZURE_CLIENTS="$SECRET_CLIENT:s3cret-value" \
	PUSHPOOL_MOCK_AZURE_CERTS="$CERT_CLIENT:$T/cert.pem" \
	"$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" --provision-seconds 1 \
	--run-seconds 0.5 >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q 'http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$T/ports" | head -n 1)
TOKEN_URL="$BASE/azure/my-tenant/oauth2/v2.0/token"
# The test moves the groups' timeline itself (provisioned at 1 s, ended at
# 1.5 s): held, it only advances when told, whatever the machine's load.
clock() { curl -fsS -X POST -d "$1" "$BASE/control/clock" >/dev/null || fail "clock $1"; }
clock '{"clock":"hold"}'
SCOPE=https%3A%2F%2Fmanagement.azure.com%2F.default

# request METHOD URL [curl args...]: body to $T/body, prints the status.
request() {
	m=$1
	u=$2
	shift 2
	curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' -X "$m" "$@" "$u"
}
expect() {
	[ "$1" = "$2" ] || fail "$3: HTTP $1, wanted $2: $(cat "$T/body")"
}
body_has() {
	grep -q -- "$1" "$T/body" || fail "body lacks $1: $(cat "$T/body")"
}

# --- Entra: client secret ---
s=$(request POST "$TOKEN_URL" -d "grant_type=client_credentials&client_id=$SECRET_CLIENT&client_secret=wrong&scope=$SCOPE")
expect "$s" 401 "wrong secret"
body_has '"error":"invalid_client"'
body_has 'AADSTS7000215: Invalid client secret provided'
s=$(request POST "$TOKEN_URL" -d "grant_type=client_credentials&client_id=nobody&client_secret=x&scope=$SCOPE")
expect "$s" 400 "unknown client"
body_has 'AADSTS700016'
s=$(request POST "$TOKEN_URL" -d "grant_type=client_credentials&client_id=$SECRET_CLIENT&client_secret=s3cret-value&scope=https://management.azure.com")
expect "$s" 400 "scope without /.default"
body_has '"error":"invalid_scope"'
s=$(request POST "$TOKEN_URL" -d "grant_type=client_credentials&client_id=$SECRET_CLIENT&client_secret=s3cret-value&scope=$SCOPE")
expect "$s" 200 "good secret"
body_has '"token_type":"Bearer"'
TOKEN=$(sed 's/.*"access_token":"\([^"]*\)".*/\1/' "$T/body")

# --- Entra: RS256 client assertion signed with the certificate's key ---
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
assertion() { # aud iss nbf exp
	h=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
	c=$(printf '{"aud":"%s","iss":"%s","sub":"%s","jti":"j1","nbf":%s,"exp":%s}' \
		"$1" "$2" "$2" "$3" "$4" | b64url)
	sig=$(printf '%s.%s' "$h" "$c" | openssl dgst -sha256 -sign "$T/key.pem" -binary | b64url)
	printf '%s.%s.%s' "$h" "$c" "$sig"
}
now=$(date +%s)
grant="grant_type=client_credentials&client_id=$CERT_CLIENT&scope=$SCOPE&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
s=$(request POST "$TOKEN_URL" -d "$grant&client_assertion=$(assertion "$TOKEN_URL" $CERT_CLIENT $now $((now + 600)))")
expect "$s" 200 "good assertion"
s=$(request POST "$TOKEN_URL" -d "$grant&client_assertion=$(assertion "https://elsewhere/token" $CERT_CLIENT $now $((now + 600)))")
expect "$s" 401 "assertion with a foreign audience"
s=$(request POST "$TOKEN_URL" -d "$grant&client_assertion=$(assertion "$TOKEN_URL" $CERT_CLIENT $((now - 4000)) $((now - 3700)))")
expect "$s" 401 "expired assertion"
body_has AADSTS700024
s=$(request POST "$TOKEN_URL" -d "$grant&client_assertion=$(assertion "$TOKEN_URL" $SECRET_CLIENT $now $((now + 600)))")
expect "$s" 401 "assertion whose iss is another client"
openssl genrsa -out "$T/other.pem" 2048 2>/dev/null
cp "$T/key.pem" "$T/key.saved"
cp "$T/other.pem" "$T/key.pem"
s=$(request POST "$TOKEN_URL" -d "$grant&client_assertion=$(assertion "$TOKEN_URL" $CERT_CLIENT $now $((now + 600)))")
expect "$s" 401 "assertion signed by another key"
body_has AADSTS700027

# --- IMDS ---
s=$(request GET "$BASE/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/")
expect "$s" 400 "IMDS without Metadata header"
s=$(request GET "$BASE/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/" -H 'Metadata: true')
expect "$s" 200 "IMDS"
body_has '"expires_on":"'
MI_TOKEN=$(sed 's/.*"access_token":"\([^"]*\)".*/\1/' "$T/body")

# --- ARM ---
RG="$BASE/azure/subscriptions/sub-1/resourceGroups/rg-1"
CG="$RG/providers/Microsoft.ContainerInstance/containerGroups"
V="api-version=2023-05-01"
auth="Authorization: Bearer $TOKEN"
group() { # env-name env-value
	printf '{"location":"westeurope","properties":{"osType":"Linux","restartPolicy":"Never","containers":[{"name":"c","properties":{"image":"repo/img:1","resources":{"requests":{"cpu":1,"memoryInGB":1.5}},"environmentVariables":[{"name":"%s","value":"%s"},{"name":"K","secureValue":"hidden-value"}]}}]}}' "$1" "$2"
}
s=$(request GET "$CG/g1?$V")
expect "$s" 401 "ARM without a token"
body_has AuthenticationFailed
s=$(request GET "$CG/g1?$V" -H "Authorization: Bearer forged")
expect "$s" 401 "ARM with a forged token"
s=$(request GET "$CG/g1" -H "$auth")
expect "$s" 400 "ARM without api-version"
body_has MissingApiVersionParameter
s=$(request GET "$RG?$V" -H "Authorization: Bearer $MI_TOKEN")
expect "$s" 200 "resource group with the managed-identity token"
body_has '"location":"westeurope"'
s=$(request PUT "$CG/Bad--Name?$V" -H "$auth" -H 'Content-Type: application/json' -d "$(group A 1)")
expect "$s" 400 "bad group name"
body_has InvalidContainerGroupName
s=$(request PUT "$CG/g1?$V" -H "$auth" -H 'Content-Type: application/json' -d '{"properties":{"containers":[]}}')
expect "$s" 400 "group without location"
body_has LocationRequired
s=$(request GET "$CG/g1?$V" -H "$auth")
expect "$s" 404 "group not yet created"
body_has ResourceNotFound

# has_state GROUP TEXT: the group's body holds TEXT now.
has_state() {
	request GET "$CG/$1?$V" -H "$auth" >/dev/null
	grep -q -- "$2" "$T/body" || fail "$1 does not show $2: $(cat "$T/body")"
}
# Realistic behaviours, on by default. aci.async (1 s): creating and
# deleting go through the async operation on the clock, provisioningState
# Creating then Succeeded; aci.pull_failure: an image that cannot be pulled
# shows as ACI reports it, in the container's events.
curl -fsS "$BASE/control/behaviours" | jq -e '.["aci.async"].on and .["aci.pull_failure"].on' >/dev/null ||
	fail "ACI behaviours not on by default"
s=$(request PUT "$CG/a1?$V" -H "$auth" -H 'Content-Type: application/json' -d "$(group A 1)")
expect "$s" 201 "create (async)"
body_has '"provisioningState":"Creating"'
OP=$(grep -i '^azure-asyncoperation:' "$T/headers" | sed 's/^[^:]*: //' | tr -d '\r')
s=$(request GET "$OP" -H "$auth")
body_has '"status":"InProgress"'
s=$(request GET "$OP" -H "$auth")
body_has '"status":"InProgress"'
clock '{"advance_ms":1100}' # past the 1 s creation (a margin for float sums)
s=$(request GET "$OP" -H "$auth")
body_has '"status":"Succeeded"'
has_state a1 '"provisioningState":"Pending"'
s=$(request DELETE "$CG/a1?$V" -H "$auth")
expect "$s" 202 "delete (async)"
OP=$(grep -i '^azure-asyncoperation:' "$T/headers" | sed 's/^[^:]*: //' | tr -d '\r')
has_state a1 '"provisioningState":"Deleting"'
s=$(request GET "$OP" -H "$auth")
body_has '"status":"InProgress"'
clock '{"advance_ms":1100}'
s=$(request GET "$CG/a1?$V" -H "$auth")
expect "$s" 404 "deleted group (async)"
s=$(request GET "$OP" -H "$auth")
body_has '"status":"Succeeded"'
pullgroup=$(group A 1 | sed 's|repo/img:1|repo/pushpool-mock-pull-fail:1|')
s=$(request PUT "$CG/a2?$V" -H "$auth" -H 'Content-Type: application/json' -d "$pullgroup")
expect "$s" 201 "create with an image that cannot be pulled"
clock '{"advance_ms":1100}' # created; 1 s of provisioning
has_state a2 '"detailStatus":"ErrImagePull"'
body_has '"name":"Failed","message":"Failed to pull image \\"repo/pushpool-mock-pull-fail:1\\"'
clock '{"advance_ms":1000}'
has_state a2 '"detailStatus":"ImagePullBackOff"'
body_has '"message":"Error: ImagePullBackOff"'
curl -fsS "$BASE/control/stats" | tr -d ' \n' | grep -q '"aci.pull_failures":1[,}]' || fail "pull failure not counted"
s=$(request DELETE "$CG/a2?$V" -H "$auth")
clock '{"advance_ms":1100}'
s=$(request GET "$CG/a2?$V" -H "$auth")
expect "$s" 404 "deleted pull-failure group"
# The start failure fault: the next new group fails its pull whatever its
# image, and a PUT that adopts the group keeps it so.
curl -fsS -X POST -d '{"api":"aci","start_failures":1}' "$BASE/control/faults" >/dev/null
s=$(request PUT "$CG/a3?$V" -H "$auth" -H 'Content-Type: application/json' -d "$(group A 1)")
expect "$s" 201 "create with a start failure injected"
clock '{"advance_ms":1100}'
has_state a3 '"detailStatus":"ErrImagePull"'
body_has '"name":"Failed","message":"Failed to pull image \\"repo/img:1\\"'
s=$(request PUT "$CG/a3?$V" -H "$auth" -H 'Content-Type: application/json' -d "$(group A 1)")
has_state a3 '"detailStatus":"ErrImagePull"'
curl -fsS "$BASE/control/stats" | tr -d ' \n' | grep -q '"aci.start_failure":1[,}]' ||
	fail "start failure not counted"
s=$(request DELETE "$CG/a3?$V" -H "$auth")
clock '{"advance_ms":1100}'
s=$(request GET "$CG/a3?$V" -H "$auth")
expect "$s" 404 "deleted start-failure group"
# The timeline checks below count polls, not time.
curl -fsS -d '{"name":"aci.async","on":false}' "$BASE/control/behaviours" >/dev/null

s=$(request PUT "$CG/g1?$V" -H "$auth" -H 'Content-Type: application/json' -d "$(group A 1)")
expect "$s" 201 "create"
grep -qi '^azure-asyncoperation: http' "$T/headers" || fail "no Azure-AsyncOperation header"
grep -qi '^retry-after: 1' "$T/headers" || fail "no Retry-After header"
grep -q hidden-value "$T/body" && fail "secureValue echoed back"
OP=$(grep -i '^azure-asyncoperation:' "$T/headers" | sed 's/^[^:]*: //' | tr -d '\r')
s=$(request GET "$OP" -H "$auth")
expect "$s" 200 "operation status"
body_has '"status":"InProgress"'
s=$(request GET "$OP" -H "$auth")
body_has '"status":"Succeeded"'
s=$(request PUT "$CG/g1?$V" -H "$auth" -H 'Content-Type: application/json' -d "$(group A 1)")
expect "$s" 200 "replayed PUT is an update"
s=$(request PUT "$CG/g2?$V" -H "$auth" -H 'Content-Type: application/json' -d "$(group PUSHPOOL_MOCK_FAIL 1)")
expect "$s" 201 "create failing group"
s=$(request PUT "$CG/g3?$V" -H "$auth" -H 'Content-Type: application/json' -d "$(group PUSHPOOL_MOCK_NOSTART 1)")
expect "$s" 201 "create never-starting group"
s=$(request PUT "$CG/g4?$V" -H "$auth" -H 'Content-Type: application/json' -d "$(group PUSHPOOL_MOCK_HOLD 1)")
expect "$s" 201 "create held group"
has_state g1 '"state":"Waiting"'
clock '{"advance_ms":1000}'
has_state g1 '"state":"Running"'
clock '{"advance_ms":500}'
has_state g1 '"state":"Terminated"'
body_has '"exitCode":0'
has_state g2 '"state":"Terminated"'
body_has '"exitCode":1'
s=$(request GET "$CG/g3?$V" -H "$auth")
body_has '"state":"Waiting"'
body_has ContainerNeverStarts
# PUSHPOOL_MOCK_HOLD: the container runs until the group is deleted.
has_state g4 '"state":"Running"'
clock '{"advance_ms":60000}' # a minute: 120 times the run
has_state g4 '"state":"Running"'
grep -q '"Terminated"\|"exitCode"' "$T/body" && fail "held group ended: $(cat "$T/body")"

stats=$(curl -fsS "$BASE/control/stats" | tr -d ' \n')
echo "$stats" | grep -q '"live_container_groups":4' || fail "4 live groups expected: $stats"
echo "$stats" | grep -q '"g1":1' || fail "g1 created once: $stats"

s=$(request DELETE "$CG/g1?$V" -H "$auth")
expect "$s" 202 "delete"
grep -qi '^location: http' "$T/headers" || fail "no Location header on delete"
OP=$(grep -i '^azure-asyncoperation:' "$T/headers" | sed 's/^[^:]*: //' | tr -d '\r')
s=$(request GET "$OP" -H "$auth")
body_has InProgress
s=$(request GET "$OP" -H "$auth")
body_has Succeeded
s=$(request GET "$CG/g1?$V" -H "$auth")
expect "$s" 404 "deleted group"
s=$(request DELETE "$CG/g1?$V" -H "$auth")
expect "$s" 204 "delete of a missing group"
s=$(request DELETE "$CG/g4?$V" -H "$auth")
expect "$s" 202 "delete held group"
OP=$(grep -i '^azure-asyncoperation:' "$T/headers" | sed 's/^[^:]*: //' | tr -d '\r')
s=$(request GET "$OP" -H "$auth")
s=$(request GET "$OP" -H "$auth")
body_has Succeeded
s=$(request GET "$CG/g4?$V" -H "$auth")
expect "$s" 404 "deleted held group"

# Throttling in ARM's shape.
curl -fsS -X POST -d '{"api":"aci","throttle_rate":1,"retry_after":3}' "$BASE/control/faults" >/dev/null
s=$(request GET "$CG/g2?$V" -H "$auth")
expect "$s" 429 "throttled"
body_has TooManyRequests
grep -qi '^retry-after: 3' "$T/headers" || fail "no Retry-After on 429"
echo "ok"
