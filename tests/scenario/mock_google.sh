#!/bin/sh
# `pushpool mock` Google side with curl and openssl only: the OAuth2 JWT
# grant (good, tampered, expired, wrong audience), the metadata server, and
# Cloud Run v2 jobs/executions on the timeline, with the provider's error
# shapes, 409 on a duplicate jobId, faults and /control.
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
	sed 's/^/mock: /' "$T/mock.log" >&2 2>/dev/null || true
	exit 1
}
checks=0
ok() { checks=$((checks + 1)); }

openssl genrsa -out "$T/key.pem" 2048 2>/dev/null
openssl genrsa -out "$T/other.pem" 2048 2>/dev/null
pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$T/key.pem")
EMAIL=runner@mock-proj.iam.gserviceaccount.com
cat >"$T/sa.json" <<EOS
{"type": "service_account", "project_id": "mock-proj", "private_key_id": "k1",
 "private_key": "$pem", "client_email": "$EMAIL", "client_id": "1",
 "token_uri": "https://oauth2.googleapis.com/token"}
EOS

"$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" --seed 3 \
	--provision-seconds 0.2 --run-seconds 0.4 --gcp-key "$T/sa.json" >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q '^url=http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(sed -n 's/^url=//p' "$T/ports")
G=$(sed -n 's/^google=//p' "$T/ports")
[ "$G" = "$BASE/google" ] || fail "port file lacks google=: $(cat "$T/ports")"
grep -q "mock listening on $BASE" "$T/mock.log" || fail "no listening line: $(cat "$T/mock.log")"
# The test moves the executions' timeline itself (provisioned at 0.2 s,
# ended at 0.6 s): held, it only advances when told, whatever the load.
clock() { curl -fsS -X POST -d "$1" "$BASE/control/clock" >/dev/null || fail "clock $1"; }
clock '{"clock":"hold"}'

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# jwt KEYFILE IAT EXP AUD [SCOPE]
jwt() {
	h=$(printf '{"alg":"RS256","typ":"JWT","kid":"k1"}' | b64url)
	c=$(printf '{"iss":"%s","scope":"%s","aud":"%s","iat":%s,"exp":%s}' \
		"$EMAIL" "${5-https://www.googleapis.com/auth/cloud-platform}" "$4" "$2" "$3" | b64url)
	s=$(printf '%s.%s' "$h" "$c" | openssl dgst -sha256 -sign "$1" | b64url)
	printf '%s.%s.%s' "$h" "$c" "$s"
}
grant() {
	curl -sS -o "$T/body" -w '%{http_code}' -X POST "$G/token" \
		--data-urlencode 'grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer' \
		--data-urlencode "assertion=$1"
}
now=$(date +%s)
AUD="$G/token"

# 1. a good assertion gets a bearer token (both audiences are accepted)
[ "$(grant "$(jwt "$T/key.pem" "$now" $((now + 3600)) "$AUD")")" = 200 ] ||
	fail "good JWT refused: $(cat "$T/body")"
TOKEN=$(sed 's/.*"access_token":"\([^"]*\)".*/\1/' "$T/body")
grep -q '"token_type":"Bearer"' "$T/body" || fail "no token_type: $(cat "$T/body")"
[ "$(grant "$(jwt "$T/key.pem" "$now" $((now + 600)) https://oauth2.googleapis.com/token)")" = 200 ] ||
	fail "google-auth audience refused: $(cat "$T/body")"
ok

# 2. the OAuth error shape for: wrong key, tampered claims, expired, too long, aud, no scope
expect_grant() { # WHAT ERROR JWT
	code=$(grant "$3")
	[ "$code" = 400 ] || fail "$1: HTTP $code, body $(cat "$T/body")"
	grep -q "\"error\":\"$2\"" "$T/body" || fail "$1: want $2, got $(cat "$T/body")"
	grep -q '"error_description":"' "$T/body" || fail "$1: no error_description"
	ok
}
expect_grant "other key" invalid_grant "$(jwt "$T/other.pem" "$now" $((now + 600)) "$AUD")"
good=$(jwt "$T/key.pem" "$now" $((now + 600)) "$AUD")
tampered_claims=$(printf '{"iss":"%s","scope":"x","aud":"%s","iat":%s,"exp":%s}' "$EMAIL" "$AUD" \
	"$now" $((now + 3000)) | b64url)
expect_grant "tampered" invalid_grant "$(echo "$good" | cut -d. -f1).$tampered_claims.$(echo "$good" | cut -d. -f3)"
expect_grant "expired" invalid_grant "$(jwt "$T/key.pem" $((now - 4000)) $((now - 400)) "$AUD")"
expect_grant "lifetime over 1h" invalid_grant "$(jwt "$T/key.pem" "$now" $((now + 7200)) "$AUD")"
expect_grant "audience" invalid_grant "$(jwt "$T/key.pem" "$now" $((now + 600)) https://evil.example/token)"
expect_grant "no scope" invalid_scope "$(jwt "$T/key.pem" "$now" $((now + 600)) "$AUD" '')"
grep -q 'Invalid JWT Signature' "$T/body" && fail "scope error reads like a signature error"
code=$(curl -sS -o "$T/body" -w '%{http_code}' -X POST "$G/token" -d 'grant_type=password')
[ "$code" = 400 ] && grep -q unsupported_grant_type "$T/body" || fail "bad grant_type: $code $(cat "$T/body")"
ok

# 3. metadata server: flavor header required, served at the root too
code=$(curl -sS -o "$T/body" -w '%{http_code}' "$BASE/computeMetadata/v1/instance/service-accounts/default/token")
[ "$code" = 403 ] || fail "metadata without flavor: $code"
for u in "$BASE/computeMetadata/v1/instance/service-accounts/default/token" \
	"$G/computeMetadata/v1/instance/service-accounts/default/token"; do
	curl -fsS -H 'Metadata-Flavor: Google' "$u" | grep -q '"access_token":"ya29' ||
		fail "metadata token at $u"
done
curl -fsS -D "$T/hdr" -o /dev/null "$BASE/" && grep -qi '^metadata-flavor: Google' "$T/hdr" ||
	fail "metadata ping lacks Metadata-Flavor"
ok

# 4. Cloud Run: bearer required, rpc Status errors
J="$G/v2/projects/mock-proj/locations/us-central1/jobs"
api() { # METHOD URL [BODY] -> HTTP code, body in $T/body
	if [ $# -ge 3 ]; then
		curl -sS -o "$T/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
			-H 'Content-Type: application/json' -d "$3" "$2"
	else
		curl -sS -o "$T/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" "$2"
	fi
}
code=$(curl -sS -o "$T/body" -w '%{http_code}' "$J")
[ "$code" = 401 ] && grep -q '"status":"UNAUTHENTICATED"' "$T/body" || fail "no 401: $code $(cat "$T/body")"
code=$(curl -sS -o "$T/body" -w '%{http_code}' -H 'Authorization: Bearer ya29.forged' "$J")
[ "$code" = 401 ] || fail "forged token: $code"
ok
JOB='{"labels":{"pushpool-run":"1"},"template":{"taskCount":1,"template":{"maxRetries":0,"timeout":"600s","containers":[{"image":"docker.io/library/busybox","command":["true"]}]}}}'
[ "$(api POST "$J?jobId=Bad_Name" "$JOB")" = 400 ] && grep -q '"status":"INVALID_ARGUMENT"' "$T/body" &&
	grep -q 'fieldViolations' "$T/body" || fail "bad jobId: $(cat "$T/body")"
[ "$(api POST "$J?jobId=ends-with-" "$JOB")" = 400 ] || fail "jobId ending in '-' accepted"
[ "$(api POST "$J?jobId=no-image" '{"template":{"template":{"containers":[{}]}}}')" = 400 ] ||
	fail "job without image accepted"
[ "$(api POST "$J?jobId=job-ok" "$JOB")" = 200 ] || fail "create: $(cat "$T/body")"
# CreateJob is a long-running operation (cloudrun.lro, 1 s): not done yet,
# the Job in its metadata; the job exists at once, reconciling
# (cloudrun.reconcile, 1 s), and RunJob is refused until it is ready.
grep -q '"done":false' "$T/body" && grep -q 'google.cloud.run.v2.Job' "$T/body" || fail "create op: $(cat "$T/body")"
CREATEOP=$(grep -o '"name":"projects/mock-proj/locations/us-central1/operations/[^"]*"' "$T/body" | sed 's/"name":"//; s/"$//')
[ "$(api POST "$J?jobId=job-ok" "$JOB")" = 409 ] && grep -q '"status":"ALREADY_EXISTS"' "$T/body" ||
	fail "duplicate jobId: $(cat "$T/body")"
[ "$(api GET "$J/job-ok")" = 200 ] && grep -q '"reconciling":true' "$T/body" &&
	grep -q '"state":"CONDITION_RECONCILING"' "$T/body" || fail "new job not reconciling: $(cat "$T/body")"
[ "$(api POST "$J/job-ok:run" '{}')" = 400 ] && grep -q '"status":"FAILED_PRECONDITION"' "$T/body" ||
	fail "run while reconciling: $(cat "$T/body")"
[ "$(api GET "$G/v2/$CREATEOP")" = 200 ] && grep -q '"done":false' "$T/body" || fail "create op done early"
clock '{"advance_ms":1100}' # past reconciling and the create operation (1 s each)
[ "$(api GET "$G/v2/$CREATEOP")" = 200 ] && grep -q '"done":true' "$T/body" &&
	grep -q '"response":{' "$T/body" || fail "create op not done after 1 s: $(cat "$T/body")"
[ "$(api GET "$J/job-ok")" = 200 ] && grep -q '"state":"CONDITION_SUCCEEDED"' "$T/body" &&
	! grep -q '"reconciling"' "$T/body" || fail "get job"
[ "$(api GET "$J")" = 200 ] && grep -q '"name":"projects/mock-proj/locations/us-central1/jobs/job-ok"' "$T/body" ||
	fail "list jobs: $(cat "$T/body")"
ok

# 5. run: the Operation's metadata is the Execution; it follows the timeline
[ "$(api POST "$J/job-ok:run" '{}')" = 200 ] || fail "run: $(cat "$T/body")"
EXEC=$(grep -o '"name":"projects/[^"]*/executions/job-ok-[a-z0-9]*"' "$T/body" | head -n 1 | sed 's/"name":"//; s/"$//')
[ -n "$EXEC" ] || fail "no execution name in $(cat "$T/body")"
grep -q '"done":false' "$T/body" || fail "run op should not be done"
[ "$(api GET "$G/v2/$EXEC")" = 200 ] || fail "get execution"
grep -q '"completionTime"' "$T/body" && fail "fresh execution already complete"
clock '{"advance_ms":300}'
api GET "$G/v2/$EXEC" >/dev/null
grep -q '"runningCount":1' "$T/body" || fail "not running after provisioning: $(cat "$T/body")"
clock '{"advance_ms":500}'
api GET "$G/v2/$EXEC" >/dev/null
grep -q '"completionTime"' "$T/body" && grep -q '"succeededCount":1' "$T/body" &&
	grep -q '"type":"Completed","state":"CONDITION_SUCCEEDED"' "$T/body" || fail "not succeeded: $(cat "$T/body")"
ok

# 6. failure marker, cancel, delete
FAILJOB=$(echo "$JOB" | sed 's/"command":\["true"\]/"command":["true"],"env":[{"name":"PUSHPOOL_MOCK_FAIL","value":"1"}]/')
[ "$(api POST "$J?jobId=job-fail" "$FAILJOB")" = 200 ] || fail "create failing job"
clock '{"advance_ms":1100}' # reconciled
api POST "$J/job-fail:run" '{}' >/dev/null
FEXEC=$(grep -o '"name":"projects/[^"]*/executions/job-fail-[a-z0-9]*"' "$T/body" | head -n 1 | sed 's/"name":"//; s/"$//')
api POST "$J/job-ok:run" '{}' >/dev/null
CEXEC=$(grep -o '"name":"projects/[^"]*/executions/job-ok-[a-z0-9]*"' "$T/body" | head -n 1 | sed 's/"name":"//; s/"$//')
# DeleteJob is refused while an execution runs (cloudrun.delete_busy) ...
[ "$(api DELETE "$J/job-ok")" = 400 ] && grep -q '"status":"FAILED_PRECONDITION"' "$T/body" &&
	grep -q 'a running execution' "$T/body" || fail "delete with a running execution: $(cat "$T/body")"
[ "$(api POST "$G/v2/$CEXEC:cancel" '{}')" = 200 ] || fail "cancel: $(cat "$T/body")"
# ... and while it is cancelling (cloudrun.cancel_drain, 1 s): its tasks
# still run, no completionTime, executionReason CANCELLING.
api GET "$G/v2/$CEXEC" >/dev/null
grep -q '"executionReason":"CANCELLING"' "$T/body" && ! grep -q '"completionTime"' "$T/body" ||
	fail "not cancelling: $(cat "$T/body")"
[ "$(api DELETE "$J/job-ok")" = 400 ] && grep -q 'a cancelling execution' "$T/body" ||
	fail "delete with a cancelling execution: $(cat "$T/body")"
clock '{"advance_ms":1100}' # the 1 s cancel drain is over
api GET "$G/v2/$CEXEC" >/dev/null
grep -q '"cancelledCount":1' "$T/body" && grep -q '"executionReason":"CANCELLED"' "$T/body" &&
	grep -q '"completionTime"' "$T/body" || fail "not cancelled: $(cat "$T/body")"
# Cancelling a finished execution is refused (cloudrun.cancel_finished).
[ "$(api POST "$G/v2/$CEXEC:cancel" '{}')" = 400 ] && grep -q '"status":"FAILED_PRECONDITION"' "$T/body" ||
	fail "cancel of a finished execution: $(cat "$T/body")"
curl -fsS "$BASE/control/stats" | tr -d ' \n' >"$T/stats"
grep -q '"cloudrun.delete_refused":2[,}]' "$T/stats" && grep -q '"cloudrun.cancel_refused":1[,}]' "$T/stats" &&
	grep -q '"cloudrun.run_not_ready":1[,}]' "$T/stats" || fail "refusals not counted: $(cat "$T/stats")"

api GET "$G/v2/$FEXEC" >/dev/null
grep -q '"failedCount":1' "$T/body" && grep -q 'CONDITION_FAILED' "$T/body" &&
	grep -q 'NON_ZERO_EXIT_CODE' "$T/body" || fail "not failed: $(cat "$T/body")"
# the start failure fault: the next execution ends before any task starts,
# its image not found (ResourcesAvailable failed, CONTAINER_MISSING)
curl -fsS -X POST -d '{"api":"cloudrun","start_failures":1}' "$BASE/control/faults" >/dev/null
api POST "$J/job-fail:run" '{}' >/dev/null
PEXEC=$(grep -o '"name":"projects/[^"]*/executions/job-fail-[a-z0-9]*"' "$T/body" | head -n 1 | sed 's/"name":"//; s/"$//')
clock '{"advance_ms":300}' # past provisioning
api GET "$G/v2/$PEXEC" >/dev/null
jq -e '.failedCount == 1 and (.startTime | not) and .completionTime != null and
	([.conditions[] | select(.type == "ResourcesAvailable" and .state == "CONDITION_FAILED" and
	  .reason == "CONTAINER_MISSING" and (.message | test("^Image .* not found[.]$")))] | length == 1)' \
	"$T/body" >/dev/null || fail "start failure: $(cat "$T/body")"
[ "$(api GET "$J/job-ok/executions")" = 200 ] && [ "$(grep -o '"uid"' "$T/body" | wc -l)" -eq 2 ] ||
	fail "list executions: $(cat "$T/body")"
[ "$(api DELETE "$J/job-fail")" = 200 ] || fail "delete job"
[ "$(api GET "$J/job-fail")" = 404 ] && grep -q '"status":"NOT_FOUND"' "$T/body" || fail "deleted job still there"
OPNAME=$(api DELETE "$J/job-ok" >/dev/null; grep -o '"name":"projects/mock-proj/locations/us-central1/operations/[^"]*"' "$T/body" | sed 's/"name":"//; s/"$//')
[ "$(api GET "$G/v2/$OPNAME")" = 200 ] && grep -q '"done":false' "$T/body" || fail "delete op done at once"
clock '{"advance_ms":1100}'
[ "$(api GET "$G/v2/$OPNAME")" = 200 ] && grep -q '"done":true' "$T/body" || fail "operations.get $OPNAME"
ok

# 6b. PUSHPOOL_MOCK_HOLD (here in the run's overrides): the execution runs
# until cancelled, however far the clock goes; held and failing, it fails.
[ "$(api POST "$J?jobId=job-hold" "$JOB")" = 200 ] || fail "create job-hold: $(cat "$T/body")"
clock '{"advance_ms":1100}' # reconciled
HOLD='{"name":"PUSHPOOL_MOCK_HOLD","value":"1"}'
api POST "$J/job-hold:run" "{\"overrides\":{\"containerOverrides\":[{\"env\":[$HOLD]}]}}" >/dev/null
HEXEC=$(grep -o '"name":"projects/[^"]*/executions/job-hold-[a-z0-9]*"' "$T/body" | head -n 1 | sed 's/"name":"//; s/"$//')
[ -n "$HEXEC" ] || fail "held run: $(cat "$T/body")"
api POST "$J/job-hold:run" "{\"overrides\":{\"containerOverrides\":[{\"env\":[$HOLD,{\"name\":\"PUSHPOOL_MOCK_FAIL\",\"value\":\"1\"}]}]}}" >/dev/null
HFEXEC=$(grep -o '"name":"projects/[^"]*/executions/job-hold-[a-z0-9]*"' "$T/body" | head -n 1 | sed 's/"name":"//; s/"$//')
clock '{"advance_ms":60000}' # a minute: 150 times the run
api GET "$G/v2/$HFEXEC" >/dev/null
jq -e '.failedCount == 1 and .completionTime != null' "$T/body" >/dev/null ||
	fail "held and failing: $(cat "$T/body")"
api GET "$G/v2/$HEXEC" >/dev/null
jq -e '.runningCount == 1 and .startTime != null and (.completionTime | not) and
	([.conditions[] | select(.type == "Completed" and .state == "CONDITION_PENDING")] | length == 1)' \
	"$T/body" >/dev/null || fail "held execution not running a minute on: $(cat "$T/body")"
[ "$(api DELETE "$J/job-hold")" = 400 ] && grep -q 'a running execution' "$T/body" ||
	fail "delete with a held execution: $(cat "$T/body")"
[ "$(api POST "$G/v2/$HEXEC:cancel" '{}')" = 200 ] || fail "cancel held: $(cat "$T/body")"
clock '{"advance_ms":1100}' # the 1 s cancel drain is over
api GET "$G/v2/$HEXEC" >/dev/null
jq -e '.cancelledCount == 1 and .runningCount == 0 and .completionTime != null' "$T/body" >/dev/null ||
	fail "held execution not cancelled: $(cat "$T/body")"
[ "$(api DELETE "$J/job-hold")" = 200 ] || fail "delete job-hold: $(cat "$T/body")"
ok

# 7. stats and faults
curl -fsS "$BASE/control/stats" >"$T/stats"
tr -d ' \n' <"$T/stats" | grep -q '"live_jobs":0' || fail "jobs left: $(cat "$T/stats")"
tr -d ' \n' <"$T/stats" | grep -q '"cloudrun.executions":{[^}]*"job-ok":2' || fail "execution counts: $(cat "$T/stats")"
tr -d ' \n' <"$T/stats" | grep -q '"cloudrun.duplicates":1,' || fail "duplicate count: $(cat "$T/stats")"
tr -d ' \n' <"$T/stats" | grep -q '"invalid_grant":[5-9]' || fail "reject counts: $(cat "$T/stats")"
curl -fsS -X POST -d '{"api":"cloudrun","throttle_rate":1,"retry_after":2}' "$BASE/control/faults" >/dev/null
code=$(curl -sS -D "$T/hdr" -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$J")
[ "$code" = 429 ] && grep -q RESOURCE_EXHAUSTED "$T/body" && grep -qi '^retry-after: 2' "$T/hdr" ||
	fail "throttle fault: $code $(cat "$T/body")"
curl -fsS -X POST -d '{"api":"cloudrun","throttle_rate":0,"reset_after_action_rate":1}' "$BASE/control/faults" >/dev/null
curl -sS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$JOB" \
	"$J?jobId=lost-answer" 2>/dev/null && fail "answer arrived despite reset_after_action_rate=1"
curl -fsS -X POST -d '{"api":"cloudrun","reset_after_action_rate":0,"cut_body_rate":1}' "$BASE/control/faults" >/dev/null
curl -sS -o /dev/null -H "Authorization: Bearer $TOKEN" "$J/lost-answer" 2>/dev/null && fail "cut body arrived whole"
curl -fsS -X POST -d '{"api":"cloudrun","cut_body_rate":0}' "$BASE/control/faults" >/dev/null
[ "$(api GET "$J/lost-answer")" = 200 ] || fail "the lost create was not applied"
code=$(curl -sS -o "$T/body" -w '%{http_code}' -X POST -d '{"api":"x","error_rate":2}' "$BASE/control/faults")
[ "$code" = 400 ] || fail "bad fault rate accepted"
curl -fsS "$BASE/control/log" | grep -q '"action":"CreateJob"' || fail "request log"
curl -fsS -X POST "$BASE/control/reset" >/dev/null
curl -fsS "$BASE/control/stats" | tr -d ' \n' | grep -q '"live_jobs":0' || fail "reset"
ok

kill "$MOCK_PID"
wait "$MOCK_PID" || fail "mock exited $? on SIGTERM"
MOCK_PID=
echo "ok: mock_google ($checks checks)"
