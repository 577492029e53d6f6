#!/bin/sh
# `pushpool once` without --wait (deploy/cron/README.md): submits what is
# due, waits only for its own submissions, and exits; it leaves the runs to
# the next pass. It used to claim its own submissions back and poll their
# status in a tight loop until the cloud finished them: the mock's request
# counters would show DescribeTasks calls.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
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

AKID=AKIDPUSHPOOLONCE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYONCEKEY00
# The tasks run for a minute: long after a correct pass has exited.
PUSHPOOL_MOCK_AWS_KEYS="$AKID:$SECRET" "$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" \
	--seed 7 --provision-seconds 0.1 --run-seconds 60 >"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q 'http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$T/ports" | head -n 1)

stat() {
	curl -fsS "$BASE/control/stats" | tr -d ' \n' | grep -o "\"$1\":[0-9]*" | head -n 1 |
		sed 's/.*://' | grep . || echo 0
}

cat >"$T/pushpool.conf" <<EOF
[dispatcher]
state_dir = $T
status_interval = 0.1
backoff_base_ms = 20
backoff_max_ms = 200
; the sweep at the end of a pass describes the cluster's tasks too, which
; would count as polls here (sweep_orphans.sh covers once's sweep)
sweep_interval = 0

[credentials "aws"]
type = aws
source = static
access_key_id = $AKID
secret_access_key = $SECRET
region = us-east-1

[pool "ecs"]
type = ecs:push
credentials = aws
endpoint = $BASE/aws/ecs
job_variables = {"cluster": "default", "image": "repo/flows:1", "network_configuration": {"subnets": ["subnet-1"]}}
EOF

"$PUSHPOOL" schedule -c "$T/pushpool.conf" -p ecs --count 3 >"$T/ids" ||
	fail "schedule: $(cat "$T/ids")"

# A generous bound on a pass that should take well under a second: the old
# pass ran until the tasks ended (a minute).
if ! timeout 45 "$PUSHPOOL" once -c "$T/pushpool.conf" >"$T/once.out" 2>"$T/once.err"; then
	fail "once did not exit 0 in time: $(cat "$T/once.out" "$T/once.err")"
fi
grep -q 'claimed 3, submitted 3,' "$T/once.out" || fail "summary: $(cat "$T/once.out")"
[ "$(stat ecs:RunTask)" -eq 3 ] ||
	fail "RunTask $(stat ecs:RunTask), want 3: $(cat "$T/once.out" "$T/once.err"; curl -fsS "$BASE/control/stats")"
[ "$(stat ecs:DescribeTasks)" -eq 0 ] ||
	fail "once polled its own submissions: DescribeTasks $(stat ecs:DescribeTasks)"
[ "$(grep -c . "$T/ids")" -eq 3 ] || fail "schedule printed $(cat "$T/ids")"
for id in $(cat "$T/ids"); do
	"$PUSHPOOL" runs -c "$T/pushpool.conf" show "$id" >"$T/show" 2>&1 || fail "runs show: $(cat "$T/show")"
	grep -q 'SUBMITTED' "$T/show" || fail "run $id not left SUBMITTED: $(cat "$T/show")"
done

# The next pass looks at each run once (still running), submits nothing,
# and exits as well.
timeout 45 "$PUSHPOOL" once -c "$T/pushpool.conf" >"$T/once2.out" 2>"$T/once2.err" ||
	fail "second once: $(cat "$T/once2.out" "$T/once2.err")"
grep -q 'submitted 0,' "$T/once2.out" || fail "second summary: $(cat "$T/once2.out")"
[ "$(stat ecs:RunTask)" -eq 3 ] || fail "RunTask $(stat ecs:RunTask) after the second pass, want 3"
[ "$(stat ecs:DescribeTasks)" -ge 1 ] && [ "$(stat ecs:DescribeTasks)" -le 6 ] ||
	fail "second pass: DescribeTasks $(stat ecs:DescribeTasks), want one look per run"
echo "ok: once submits 3, polls none of its own, exits; the next pass looks once"
