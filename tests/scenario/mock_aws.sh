#!/bin/sh
# `pushpool mock` AWS side with curl only (curl --aws-sigv4 signs): SigV4
# rejections in AWS's own shapes (missing, malformed, unknown key, tampered
# body, skewed clock, expired session token), Fargate cpu/memory checks,
# task definition revisions, RunTask clientToken idempotency, the task
# lifecycle with exit codes, a held task (PUSHPOOL_MOCK_HOLD), StopTask, STS,
# container credentials and IMDSv2.
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

AKID=AKIDMOCKSCENARIO
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYMOCKSCENARIO

# Secrets never on the command line (ps shows it), listeners on loopback only.
for bad in "--aws-key $AKID:$SECRET" "--aws-web-identity-token x.y.z" "--listen 0.0.0.0:0" \
	"--listen 192.168.0.1:0"; do
	rc=0
	# shellcheck disable=SC2086 # the words of $bad are separate arguments
	out=$("$PUSHPOOL" mock $bad 2>&1) || rc=$?
	[ "$rc" = 64 ] || fail "mock $bad: exit $rc, want 64: $out"
	case $out in
	*"$SECRET"*) fail "mock $bad: the secret is in its message" ;;
	*PUSHPOOL_MOCK_AWS_*|*loopback*) ;;
	*) fail "mock $bad: unclear message: $out" ;;
	esac
done
PUSHPOOL_MOCK_AWS_KEYS="$AKID:$SECRET" "$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" \
	--seed 5 --token-lifetime 2 --provision-seconds 0.2 --run-seconds 0.4 >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q '^url=http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(sed -n 's/^url=//p' "$T/ports")
A=$(sed -n 's/^aws=//p' "$T/ports")
# The test moves the tasks' timeline itself: held, it only advances when
# told, so a busy machine cannot age a task past the phase under test.
clock() { curl -fsS -X POST -d "$1" "$BASE/control/clock" >/dev/null || fail "clock $1"; }
clock '{"clock":"hold"}'
ECS="$A/ecs/"
[ "$A" = "$BASE/aws" ] || fail "port file lacks aws=: $(cat "$T/ports")"

# ecs ACTION BODY [USER:SECRET] [extra curl args] -> HTTP code; body in $T/body
ecs() {
	action=$1 body=$2 user=${3:-$AKID:$SECRET}
	shift 2
	[ $# -gt 0 ] && shift
	curl -sS -o "$T/body" -w '%{http_code}' --aws-sigv4 'aws:amz:us-east-1:ecs' --user "$user" \
		-H 'Content-Type: application/x-amz-json-1.1' \
		-H "X-Amz-Target: AmazonEC2ContainerServiceV20141113.$action" -d "$body" "$@" "$ECS"
}
expect() { # WHAT HTTP TYPE (the last call's answer)
	[ "$code" = "$2" ] || fail "$1: HTTP $code, want $2: $(cat "$T/body")"
	grep -q "\"__type\":\"$3\"" "$T/body" || fail "$1: want $3, got $(cat "$T/body")"
	grep -q '"message":"' "$T/body" || fail "$1: no message in $(cat "$T/body")"
	ok
}
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$T/body" | head -n 1; }

# 1. SigV4 rejections
code=$(curl -sS -o "$T/body" -w '%{http_code}' -H 'X-Amz-Target: AmazonEC2ContainerServiceV20141113.ListTaskDefinitions' \
	-H 'Content-Type: application/x-amz-json-1.1' -d '{}' "$ECS")
expect "no Authorization" 403 MissingAuthenticationTokenException
code=$(curl -sS -o "$T/body" -w '%{http_code}' -H 'Authorization: AWS4-HMAC-SHA256 Credential=x' \
	-H 'X-Amz-Target: AmazonEC2ContainerServiceV20141113.ListTaskDefinitions' -d '{}' "$ECS")
expect "malformed Authorization" 400 IncompleteSignatureException
code=$(ecs ListTaskDefinitions '{}' "AKIDUNKNOWN:$SECRET")
expect "unknown key" 403 UnrecognizedClientException
code=$(ecs ListTaskDefinitions '{}' "$AKID:not-the-secret")
expect "wrong secret" 403 InvalidSignatureException
grep -q 'does not match the signature you provided' "$T/body" || fail "signature message: $(cat "$T/body")"
code=$(curl -sS -o "$T/body" -w '%{http_code}' --aws-sigv4 'aws:amz:us-east-1:sts' --user "$AKID:$SECRET" \
	-H 'Content-Type: application/x-amz-json-1.1' \
	-H 'X-Amz-Target: AmazonEC2ContainerServiceV20141113.ListTaskDefinitions' -d '{}' "$ECS")
expect "scoped to sts" 403 InvalidSignatureException
# Replay a good request's signature over a different body.
code=$(ecs ListTaskDefinitions '{"familyPrefix":"a"}' "$AKID:$SECRET" -v 2>"$T/trace")
[ "$code" = 200 ] || fail "signed ListTaskDefinitions: $code $(cat "$T/body")"
AUTH=$(sed -n 's/^> [Aa]uthorization: //p' "$T/trace" | tr -d '\r')
DATE=$(sed -n 's/^> [Xx]-[Aa]mz-[Dd]ate: //p' "$T/trace" | tr -d '\r')
[ -n "$AUTH" ] && [ -n "$DATE" ] || fail "no signature seen in curl trace"
code=$(curl -sS -o "$T/body" -w '%{http_code}' -H "Authorization: $AUTH" -H "X-Amz-Date: $DATE" \
	-H 'Content-Type: application/x-amz-json-1.1' \
	-H 'X-Amz-Target: AmazonEC2ContainerServiceV20141113.ListTaskDefinitions' -d '{"familyPrefix":"b"}' "$ECS")
expect "tampered body" 403 InvalidSignatureException
code=$(curl -sS -o "$T/body" -w '%{http_code}' -H "Authorization: $AUTH" -H "X-Amz-Date: 20200101T000000Z" \
	-H 'Content-Type: application/x-amz-json-1.1' \
	-H 'X-Amz-Target: AmazonEC2ContainerServiceV20141113.ListTaskDefinitions' -d '{"familyPrefix":"a"}' "$ECS")
expect "skewed X-Amz-Date" 403 InvalidSignatureException
grep -q 'Signature expired' "$T/body" || fail "skew message: $(cat "$T/body")"

# 2. RegisterTaskDefinition: Fargate rules, revisions
TD='"containerDefinitions":[{"name":"flow","image":"busybox","essential":true}],"requiresCompatibilities":["FARGATE"],"networkMode":"awsvpc"'
code=$(ecs RegisterTaskDefinition "{\"family\":\"fam\",$TD,\"cpu\":\"256\",\"memory\":\"4096\"}")
expect "256 CPU with 4 GB" 400 ClientException
grep -q 'No Fargate configuration exists for given values: 256 CPU, 4096 memory' "$T/body" || fail "$(cat "$T/body")"
code=$(ecs RegisterTaskDefinition "{\"family\":\"fam\",$TD}")
expect "Fargate without cpu" 400 ClientException
code=$(ecs RegisterTaskDefinition '{"family":"fam","containerDefinitions":[{"name":"flow","image":"x"}],"requiresCompatibilities":["FARGATE"],"cpu":"256","memory":"512"}')
expect "Fargate without awsvpc" 400 ClientException
code=$(ecs RegisterTaskDefinition '{"family":"bad family!","containerDefinitions":[{"name":"a","image":"x"}]}')
expect "bad family" 400 ClientException
code=$(ecs RegisterTaskDefinition "{\"family\":\"fam\",$TD,\"cpu\":\"1 vCPU\",\"memory\":\"2 GB\",\"tags\":[{\"key\":\"pushpool:td-hash\",\"value\":\"h1\"}]}")
[ "$code" = 200 ] || fail "register: $code $(cat "$T/body")"
grep -q '"revision":1' "$T/body" && grep -q '"cpu":"1024"' "$T/body" && grep -q '"memory":"2048"' "$T/body" &&
	grep -q '"status":"ACTIVE"' "$T/body" || fail "register answer: $(cat "$T/body")"
FAILING='"containerDefinitions":[{"name":"flow","image":"busybox","environment":[{"name":"PUSHPOOL_MOCK_FAIL","value":"1"}]}]'
code=$(ecs RegisterTaskDefinition "{\"family\":\"fam\",$FAILING,\"requiresCompatibilities\":[\"FARGATE\"],\"networkMode\":\"awsvpc\",\"cpu\":\"512\",\"memory\":\"1024\"}")
[ "$code" = 200 ] && grep -q '"revision":2' "$T/body" || fail "second revision: $(cat "$T/body")"
[ "$(ecs DescribeTaskDefinition '{"taskDefinition":"fam"}')" = 200 ] && grep -q '"revision":2' "$T/body" ||
	fail "describe latest: $(cat "$T/body")"
grep -q '"tags"' "$T/body" && fail "tags without include TAGS: $(cat "$T/body")"
[ "$(ecs DescribeTaskDefinition '{"taskDefinition":"fam:1","include":["TAGS"]}')" = 200 ] &&
	grep -q '"tags":\[{"key":"pushpool:td-hash","value":"h1"}\]' "$T/body" || fail "describe tags: $(cat "$T/body")"
ok

# 3. RunTask: validation, idempotency, lifecycle
NET='"networkConfiguration":{"awsvpcConfiguration":{"subnets":["subnet-1"]}}'
# Eventual consistency (on by default): a new task is MISSING for 2 s.
curl -fsS "$BASE/control/behaviours" | jq -e '.["ecs.missing"] | .on and .seconds == 2' >/dev/null ||
	fail "ecs.missing is not on by default: $(curl -sS "$BASE/control/behaviours")"
[ "$(ecs RunTask "{\"taskDefinition\":\"fam:1\",$NET}")" = 200 ] || fail "run: $(cat "$T/body")"
ETASK=$(field taskArn)
ecs DescribeTasks "{\"tasks\":[\"$ETASK\"]}" >/dev/null
jq -e --arg t "$ETASK" '.tasks == [] and .failures == [{"arn":$t,"reason":"MISSING"}]' "$T/body" >/dev/null ||
	fail "a task just run is not MISSING: $(cat "$T/body")"
clock '{"advance_ms":2100}'
ecs DescribeTasks "{\"tasks\":[\"$ETASK\"]}" >/dev/null
jq -e --arg t "$ETASK" '.tasks[0].taskArn == $t and .failures == []' "$T/body" >/dev/null ||
	fail "the task is still MISSING 2.1 s after RunTask: $(cat "$T/body")"
curl -fsS "$BASE/control/stats" | grep -q '"ecs.missing_answers":1[,}]' ||
	fail "MISSING answers not counted: $(curl -fsS "$BASE/control/stats")"
code=$(curl -sS -o "$T/body" -w '%{http_code}' -d '{"name":"ecs.missing","on":false,"seconds":-1}' "$BASE/control/behaviours")
[ "$code" = 400 ] || fail "negative seconds accepted: $code"
code=$(curl -sS -o "$T/body" -w '%{http_code}' -d '{"name":"ecs.nope","on":false}' "$BASE/control/behaviours")
[ "$code" = 400 ] || fail "unknown behaviour accepted: $code"
# The timeline below reads tasks from their first moment.
curl -fsS -d '{"name":"ecs.missing","on":false}' "$BASE/control/behaviours" >/dev/null
ok
code=$(ecs RunTask '{"taskDefinition":"fam:1","launchType":"FARGATE"}')
expect "awsvpc without subnets" 400 InvalidParameterException
code=$(ecs RunTask "{\"taskDefinition\":\"nope:1\",$NET}")
expect "unknown task definition" 400 ClientException
code=$(ecs RunTask "{\"taskDefinition\":\"fam:1\",\"launchType\":\"FARGATE\",$NET,\"clientToken\":\"tok-1\"}")
[ "$code" = 200 ] || fail "run: $code $(cat "$T/body")"
TASK=$(field taskArn)
echo "$TASK" | grep -q '^arn:aws:ecs:us-east-1:[0-9]*:task/default/[0-9a-f]*$' || fail "task ARN $TASK"
grep -q '"lastStatus":"PROVISIONING"' "$T/body" || fail "fresh task: $(cat "$T/body")"
code=$(ecs RunTask "{\"taskDefinition\":\"fam:1\",\"launchType\":\"FARGATE\",$NET,\"clientToken\":\"tok-1\"}")
[ "$code" = 200 ] && [ "$(field taskArn)" = "$TASK" ] || fail "same token gave another task: $(cat "$T/body")"
code=$(ecs RunTask "{\"taskDefinition\":\"fam:1\",\"launchType\":\"FARGATE\",$NET,\"clientToken\":\"tok-1\",\"startedBy\":\"x\"}")
expect "same token, other params" 400 ConflictException
jq -e --arg t "$TASK" '.resourceIds == [$t]' "$T/body" >/dev/null ||
	fail "the conflict does not name the task bound to the token: $(cat "$T/body")"
clock '{"advance_ms":300}' # provisioned at 0.2 s, running until 0.6 s
ecs DescribeTasks "{\"tasks\":[\"$TASK\",\"arn:aws:ecs:us-east-1:123456789012:task/default/missing\"]}" >/dev/null
grep -q '"lastStatus":"RUNNING"' "$T/body" && grep -q '"reason":"MISSING"' "$T/body" || fail "running: $(cat "$T/body")"
clock '{"advance_ms":400}' # 0.7 s: stopped
ecs DescribeTasks "{\"tasks\":[\"$TASK\"]}" >/dev/null
grep -q '"lastStatus":"STOPPED"' "$T/body" && grep -q '"exitCode":0' "$T/body" &&
	grep -q '"stopCode":"EssentialContainerExited"' "$T/body" || fail "stopped: $(cat "$T/body")"
ok
ecs RunTask "{\"taskDefinition\":\"fam:2\",$NET}" >/dev/null
FTASK=$(field taskArn)
ecs RunTask "{\"taskDefinition\":\"fam:1\",$NET,\"overrides\":{\"containerOverrides\":[{\"name\":\"flow\",\"environment\":[{\"name\":\"PUSHPOOL_MOCK_CRASH\",\"value\":\"1\"}]}]}}" >/dev/null
CTASK=$(field taskArn)
ecs RunTask "{\"taskDefinition\":\"fam:1\",$NET}" >/dev/null
STASK=$(field taskArn)
# the start failure fault: the next task only stops as ECS stops one whose
# image cannot be pulled
curl -fsS -X POST -d '{"api":"ecs","start_failures":1}' "$BASE/control/faults" >/dev/null
ecs RunTask "{\"taskDefinition\":\"fam:1\",$NET}" >/dev/null
PTASK=$(field taskArn)
ecs RunTask "{\"taskDefinition\":\"fam:1\",$NET}" >/dev/null
OTASK=$(field taskArn)
# PUSHPOOL_MOCK_HOLD: the task runs until stopped; on fam:2, which fails,
# the failure wins.
HOLD='"overrides":{"containerOverrides":[{"name":"flow","environment":[{"name":"PUSHPOOL_MOCK_HOLD","value":"1"}]}]}'
ecs RunTask "{\"taskDefinition\":\"fam:1\",$NET,$HOLD}" >/dev/null
HTASK=$(field taskArn)
ecs RunTask "{\"taskDefinition\":\"fam:2\",$NET,$HOLD}" >/dev/null
HFTASK=$(field taskArn)
[ "$(ecs StopTask "{\"task\":\"$STASK\",\"reason\":\"timeout\"}")" = 200 ] || fail "stop: $(cat "$T/body")"
grep -q '"stopCode":"UserInitiated"' "$T/body" || fail "stop answer: $(cat "$T/body")"
code=$(ecs StopTask '{"task":"nope"}')
expect "stop unknown task" 400 InvalidParameterException
clock '{"advance_ms":800}' # past 0.6 s: every task has ended
ecs DescribeTasks "{\"tasks\":[\"$FTASK\"]}" >/dev/null
grep -q '"exitCode":1' "$T/body" || fail "PUSHPOOL_MOCK_FAIL: $(cat "$T/body")"
ecs DescribeTasks "{\"tasks\":[\"$CTASK\"]}" >/dev/null
grep -q '"stopCode":"TaskFailedToStart"' "$T/body" && ! grep -q exitCode "$T/body" || fail "crash: $(cat "$T/body")"
ecs DescribeTasks "{\"tasks\":[\"$STASK\"]}" >/dev/null
grep -q '"stoppedReason":"timeout"' "$T/body" || fail "stop reason: $(cat "$T/body")"
ecs DescribeTasks "{\"tasks\":[\"$PTASK\"]}" >/dev/null
grep -q '"stopCode":"TaskFailedToStart"' "$T/body" && ! grep -q exitCode "$T/body" &&
	grep -q '"stoppedReason":"CannotPullContainerError: ' "$T/body" &&
	grep -q '"reason":"CannotPullContainerError: ' "$T/body" || fail "start failure: $(cat "$T/body")"
ecs DescribeTasks "{\"tasks\":[\"$OTASK\"]}" >/dev/null
grep -q '"exitCode":0' "$T/body" || fail "the fault failed a second task: $(cat "$T/body")"
ecs DescribeTasks "{\"tasks\":[\"$HFTASK\"]}" >/dev/null
grep -q '"lastStatus":"STOPPED"' "$T/body" && grep -q '"exitCode":1' "$T/body" ||
	fail "held and failing: $(cat "$T/body")"
clock '{"advance_ms":60000}' # a minute: 150 times the run
ecs DescribeTasks "{\"tasks\":[\"$HTASK\"]}" >/dev/null
jq -e '.tasks[0] | .lastStatus == "RUNNING" and .desiredStatus == "RUNNING" and .startedAt != null and
	(.stoppedAt | not) and (.containers[0].exitCode | not)' "$T/body" >/dev/null ||
	fail "held task not running a minute on: $(cat "$T/body")"
[ "$(ecs StopTask "{\"task\":\"$HTASK\",\"reason\":\"held\"}")" = 200 ] || fail "stop held: $(cat "$T/body")"
ecs DescribeTasks "{\"tasks\":[\"$HTASK\"]}" >/dev/null
jq -e '.tasks[0] | .lastStatus == "STOPPED" and .stopCode == "UserInitiated" and
	.stoppedReason == "held" and .containers[0].exitCode == 137' "$T/body" >/dev/null ||
	fail "held task not stopped by StopTask: $(cat "$T/body")"
curl -fsS "$BASE/control/stats" | tr -d ' \n' | grep -q '"ecs.start_failure":1' ||
	fail "start failure not counted: $(curl -fsS "$BASE/control/stats")"
[ "$(ecs DeregisterTaskDefinition '{"taskDefinition":"fam:1"}')" = 200 ] && grep -q '"status":"INACTIVE"' "$T/body" ||
	fail "deregister: $(cat "$T/body")"
code=$(ecs RunTask "{\"taskDefinition\":\"fam:1\",$NET}")
expect "run inactive revision" 400 ClientException
ok

# 4. faults: throttling, failures[] without tasks, lost answers still act
curl -fsS -X POST -d '{"api":"ecs","throttle_rate":1}' "$BASE/control/faults" >/dev/null
code=$(ecs ListTaskDefinitions '{}')
expect "throttled" 400 ThrottlingException
curl -fsS -X POST -d '[{"api":"ecs","throttle_rate":0},{"api":"ecs.capacity","error_rate":1}]' "$BASE/control/faults" >/dev/null
[ "$(ecs RunTask "{\"taskDefinition\":\"fam:2\",$NET}")" = 200 ] && grep -q '"tasks":\[\]' "$T/body" &&
	grep -q 'Capacity is unavailable' "$T/body" || fail "capacity failure: $(cat "$T/body")"
curl -fsS -X POST -d '[{"api":"ecs.capacity","error_rate":0},{"api":"ecs","reset_after_action_rate":1}]' "$BASE/control/faults" >/dev/null
ecs RunTask "{\"taskDefinition\":\"fam:2\",$NET,\"clientToken\":\"lost-1\"}" >/dev/null 2>&1 && fail "answer arrived"
curl -fsS -X POST -d '{"api":"ecs","reset_after_action_rate":0}' "$BASE/control/faults" >/dev/null
curl -fsS "$BASE/control/stats" | tr -d ' \n' | grep -q '"ecs.clientToken":{[^}]*"lost-1":1' ||
	fail "lost RunTask not applied: $(curl -fsS "$BASE/control/stats")"
# latency_ms holds a RunTask back once: its capacity roll is part of the
# same request (it slept a second time, so +20 ms answered in 40).
curl -fsS -X POST -d '[{"api":"ecs","latency_ms":1},{"api":"ecs.capacity","latency_ms":1}]' \
	"$BASE/control/faults" >/dev/null
[ "$(ecs RunTask "{\"taskDefinition\":\"fam:2\",$NET}")" = 200 ] || fail "delayed RunTask: $(cat "$T/body")"
delayed=$(curl -fsS "$BASE/control/stats" | jq -c '.keyed.delayed')
[ "$delayed" = '{"ecs":1}' ] || fail "RunTask delayed $delayed, want {\"ecs\":1}"
curl -fsS -X POST -d '[{"api":"ecs","latency_ms":0},{"api":"ecs.capacity","latency_ms":0}]' \
	"$BASE/control/faults" >/dev/null
ok

# 5. STS, temporary credentials, expiry; web identity; container creds; IMDSv2
sts() { # USER BODY
	curl -sS -o "$T/body" -w '%{http_code}' --aws-sigv4 'aws:amz:us-east-1:sts' --user "$1" \
		-H 'Content-Type: application/x-www-form-urlencoded' -d "$2" "$A/sts/"
}
ROLE='RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fflows&RoleSessionName=pushpool'
[ "$(sts "$AKID:$SECRET" "Action=AssumeRole&Version=2011-06-15&$ROLE")" = 200 ] || fail "AssumeRole: $(cat "$T/body")"
xml() { sed -n "s/.*<$1>\\([^<]*\\)<\\/$1>.*/\\1/p" "$T/body"; }
TAKID=$(xml AccessKeyId) TSECRET=$(xml SecretAccessKey) TTOKEN=$(xml SessionToken)
[ -n "$TAKID" ] && [ -n "$TTOKEN" ] && grep -q '<Expiration>' "$T/body" || fail "AssumeRole answer: $(cat "$T/body")"
[ "$(sts "$AKID:wrong" "Action=AssumeRole&Version=2011-06-15&$ROLE")" = 403 ] &&
	grep -q '<Code>InvalidSignatureException</Code>' "$T/body" || fail "STS bad signature: $(cat "$T/body")"
code=$(ecs ListTaskDefinitions '{}' "$TAKID:$TSECRET" -H "X-Amz-Security-Token: $TTOKEN")
[ "$code" = 200 ] || fail "temporary credentials refused: $(cat "$T/body")"
code=$(ecs ListTaskDefinitions '{}' "$TAKID:$TSECRET")
expect "temporary key without its token" 403 UnrecognizedClientException
clock '{"advance_ms":2100}' # the 2 s session token has expired
code=$(ecs ListTaskDefinitions '{}' "$TAKID:$TSECRET" -H "X-Amz-Security-Token: $TTOKEN")
expect "expired session token" 400 ExpiredTokenException
code=$(curl -sS -o "$T/body" -w '%{http_code}' -d "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&$ROLE&WebIdentityToken=aaa.bbb.ccc" "$A/sts/")
[ "$code" = 200 ] && grep -q '<AssumeRoleWithWebIdentityResult>' "$T/body" || fail "web identity: $(cat "$T/body")"
code=$(curl -sS -o "$T/body" -w '%{http_code}' -d "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&$ROLE&WebIdentityToken=notajwt" "$A/sts/")
[ "$code" = 400 ] && grep -q '<Code>InvalidIdentityToken</Code>' "$T/body" || fail "bad web identity: $(cat "$T/body")"
curl -fsS "$A/container-credentials/v2/abc" | grep -q '"Token":"' || fail "container credentials"
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/latest/meta-data/iam/security-credentials/")" = 401 ] ||
	fail "IMDS without a token"
IT=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$BASE/latest/api/token")
R=$(curl -fsS -H "X-aws-ec2-metadata-token: $IT" "$BASE/latest/meta-data/iam/security-credentials/")
curl -fsS -H "X-aws-ec2-metadata-token: $IT" "$BASE/latest/meta-data/iam/security-credentials/$R" |
	grep -q '"Code":"Success"' || fail "IMDS credentials for $R"
ok

# 6. concurrent clients: 12 parallel RunTasks, 12 tasks (the same token twice
# counts once)
before=$(curl -fsS "$BASE/control/stats" | tr -d ' \n' | sed -n 's/.*"RunTaskStarted":\([0-9]*\).*/\1/p')
n=0 pids=
while [ $n -lt 12 ]; do
	ecs RunTask "{\"taskDefinition\":\"fam:2\",$NET,\"clientToken\":\"par-$n\"}" "$AKID:$SECRET" \
		-o "$T/par$n" >/dev/null &
	pids="$pids $!"
	n=$((n + 1))
done
ecs RunTask "{\"taskDefinition\":\"fam:2\",$NET,\"clientToken\":\"par-0\"}" "$AKID:$SECRET" \
	-o "$T/par-again" >/dev/null &
# Not a bare wait: the mock is a child too.
wait $pids $!
after=$(curl -fsS "$BASE/control/stats" | tr -d ' \n' | sed -n 's/.*"RunTaskStarted":\([0-9]*\).*/\1/p')
[ $((after - before)) -eq 12 ] || fail "12 parallel RunTasks started $((after - before)) tasks"
ok

# 7. stats
curl -fsS "$BASE/control/stats" | tr -d ' \n' >"$T/stats"
grep -q '"RegisterTaskDefinition":2' "$T/stats" && grep -q '"DeregisterTaskDefinition":1' "$T/stats" &&
	grep -q '"StopTask":2' "$T/stats" && grep -q '"InvalidSignatureException":[4-9]' "$T/stats" &&
	grep -q '"live_task_definitions":1' "$T/stats" || fail "stats: $(cat "$T/stats")"
ok

kill "$MOCK_PID"
wait "$MOCK_PID" || fail "mock exited $? on SIGTERM"
MOCK_PID=
echo "ok: mock_aws ($checks checks)"
