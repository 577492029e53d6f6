#!/bin/sh
# The real AWS CLI against `pushpool mock`: register-task-definition,
# run-task, describe-tasks and stop-task signed by botocore's SigV4 and
# verified by the mock; a wrong secret must be refused. Needs `aws`.
# Usage: sh tests/interop/awscli.sh PUSHPOOL_BINARY
set -eu
PUSHPOOL=${1:-${PUSHPOOL:?usage: awscli.sh PUSHPOOL_BINARY}}
if ! command -v aws >/dev/null 2>&1; then
	echo "skip: no aws CLI"
	exit 0
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

export AWS_ACCESS_KEY_ID=AKIDINTEROPTEST AWS_SECRET_ACCESS_KEY=interop/secret+KEY/0123456789abcdefghij
export AWS_DEFAULT_REGION=eu-west-1 AWS_CONFIG_FILE="$T/none" AWS_SHARED_CREDENTIALS_FILE="$T/none"
unset AWS_SESSION_TOKEN AWS_PROFILE 2>/dev/null || true
PUSHPOOL_MOCK_AWS_KEYS="$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$PUSHPOOL" mock \
	--listen 127.0.0.1:0 --port-file "$T/ports" --provision-seconds 0.2 --run-seconds 0.4 \
	>"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q '^aws=' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 100 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
ECS="$(sed -n 's/^aws=//p' "$T/ports")/ecs/"
ecs() { aws ecs --endpoint-url "$ECS" --output json "$@"; }

ecs register-task-definition --family interop --requires-compatibilities FARGATE \
	--network-mode awsvpc --cpu 256 --memory 512 \
	--container-definitions '[{"name":"flow","image":"busybox","command":["true"]}]' >"$T/out" ||
	fail "register-task-definition"
grep -q '"taskDefinitionArn": "arn:aws:ecs:eu-west-1:[0-9]*:task-definition/interop:1"' "$T/out" ||
	fail "register answer: $(cat "$T/out")"
if ecs register-task-definition --family interop --requires-compatibilities FARGATE \
	--network-mode awsvpc --cpu 256 --memory 8192 \
	--container-definitions '[{"name":"flow","image":"busybox"}]' >"$T/out" 2>"$T/err"; then
	fail "256 CPU with 8 GB accepted"
fi
grep -q 'ClientException' "$T/err" && grep -q 'No Fargate configuration' "$T/err" || fail "$(cat "$T/err")"

ecs run-task --cluster default --task-definition interop:1 --launch-type FARGATE \
	--network-configuration 'awsvpcConfiguration={subnets=[subnet-1],assignPublicIp=DISABLED}' \
	>"$T/out" || fail "run-task"
TASK=$(sed -n 's/.*"taskArn": "\([^"]*\)".*/\1/p' "$T/out" | head -n 1)
[ -n "$TASK" ] || fail "no taskArn: $(cat "$T/out")"
sleep 0.8
ecs describe-tasks --cluster default --tasks "$TASK" >"$T/out" || fail "describe-tasks"
grep -q '"lastStatus": "STOPPED"' "$T/out" && grep -q '"exitCode": 0' "$T/out" ||
	fail "task did not finish: $(cat "$T/out")"
ecs stop-task --cluster default --task "$TASK" >/dev/null || fail "stop-task"
ecs deregister-task-definition --task-definition interop:1 >/dev/null || fail "deregister"

if AWS_SECRET_ACCESS_KEY=wrong ecs list-task-definitions >/dev/null 2>"$T/err"; then
	fail "a wrong secret was accepted"
fi
grep -q InvalidSignatureException "$T/err" || fail "wrong secret: $(cat "$T/err")"
echo "ok: awscli interop ($(aws --version 2>&1 | cut -d' ' -f1))"
