#!/bin/sh
# Cross-checks against real third-party clients from Debian (`make interop`
# installs them first): botocore's SigV4 signer and the AWS CLI against our
# signer and mock, google-auth against our JWT assertion and token endpoint.
# Here a missing client is a failure, not a skip: the target installed it.
# Usage: sh tests/interop/run.sh PUSHPOOL_BINARY   (from the repo root)
set -u
PUSHPOOL=${1:?usage: run.sh PUSHPOOL_BINARY}
fail=0
for t in sigv4 google awscli google_auth ecs_skeleton spec_bodies; do
	out=$(sh "tests/interop/$t.sh" "$PUSHPOOL" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || printf '%s\n' "$out" | grep -q '^skip:'; then
		printf '%s\n' "$out"
		echo "FAIL: interop $t"
		fail=1
	else
		echo "ok   interop $t: $(printf '%s\n' "$out" | tail -n 1)"
	fi
done
exit $fail
