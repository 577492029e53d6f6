#!/bin/sh
# pushpool provision for Modal against `pushpool mock`: plan checks the
# token and names the workspace; a missing environment is created only with
# --create-environment; apply asks on a terminal and goes on only for "yes";
# it writes the job variables and a 0600
# credentials file; a second apply and plan change nothing; kill -9 at
# random points of apply, each followed by a re-run, ends where one clean
# apply does; destroy removes only the environment pushpool made; the
# written configuration alone runs a sandbox end to end.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
for cmd in mock provision; do
	if ! "$PUSHPOOL" $cmd --help >/dev/null 2>&1; then
		echo "FAIL: '$PUSHPOOL $cmd --help' does not work" >&2
		exit 1
	fi
done
command -v jq >/dev/null || {
	echo "FAIL: jq is needed" >&2
	exit 1
}
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

PUSHPOOL_MOCK_MODAL_TOKEN=ak-scenario:as-scenario-secret "$PUSHPOOL" mock --listen 127.0.0.1:0 \
	--port-file "$T/ports" --seed 9 --provision-seconds 0.1 --run-seconds 0.2 \
	>"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q '^modal=http://' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
BASE=$(sed -n 's/^url=//p' "$T/ports")
MODAL=$(sed -n 's/^modal=//p' "$T/ports")
changes() {
	curl -fsS "$BASE/control/stats" | jq -cS '.keyed.modal_changes // {}'
}
envs() {
	curl -fsS "$BASE/modal/control/environments" | jq -c 'sort'
}

mkdir -p "$T/state"
write_conf() {
	cat >"$T/pushpool.conf" <<EOF
[dispatcher]
state_dir = $T/state
status_interval = 0.1
backoff_base_ms = 20
backoff_max_ms = 200
$1
[pool "md"]
type = modal:push
credentials = modal
endpoint = $MODAL
job_variables = {"image": "python:3.12-slim", "command": "python -c 'print(42)'", "modal_environment": "pushpool-md"}
EOF
}
write_conf '
[credentials "modal"]
type = modal
source = token
token_id = ak-scenario
token_secret = as-scenario-secret
'
pp() {
	"$PUSHPOOL" -c "$T/pushpool.conf" "$@"
}

# An environment made by hand: never pushpool's to remove.
curl -fsS -X POST -d '{"name": "handmade"}' "$BASE/modal/control/environments" >/dev/null
before=$(envs)

# 1. plan: the token works, in which workspace; the environment is missing.
rc=0
out=$(pp provision plan -p md) || rc=$?
[ $rc -eq 2 ] || fail "plan exited $rc, not 2: $out"
echo "$out" | grep -Eq 'token +ak-scenario .*present .*workspace mock-workspace, user mock-user' ||
	fail "plan does not show the token's workspace: $out"
echo "$out" | grep -Eq 'environment +pushpool-md +absent +create .*needs --create-environment' ||
	fail "plan does not show the missing environment: $out"

# 2. a wrong token: a clear error, nothing else tried.
write_conf '
[credentials "modal"]
type = modal
source = token
token_id = ak-scenario
token_secret = wrong
'
rc=0
pp provision plan -p md >"$T/out" 2>&1 || rc=$?
[ $rc -eq 77 ] || fail "a wrong token: exit $rc: $(cat "$T/out")"
grep -q 'UNAUTHENTICATED' "$T/out" || fail "the error does not say why: $(cat "$T/out")"
grep -q 'wrong' "$T/out" && fail "the secret reached the error: $(cat "$T/out")"
write_conf '
[credentials "modal"]
type = modal
source = token
token_id = ak-scenario
token_secret = as-scenario-secret
'

# 3. apply without --create-environment: refused before any change.
rc=0
pp provision apply -p md --yes </dev/null >"$T/out" 2>&1 || rc=$?
[ $rc -eq 65 ] || fail "apply without --create-environment exited $rc: $(cat "$T/out")"
grep -q -- '--create-environment' "$T/out" || fail "the refusal does not say how: $(cat "$T/out")"
[ "$(changes)" = "{}" ] || fail "a refused apply changed something: $(changes)"

# 4. apply on a terminal: it asks; anything but "yes" changes nothing.
rc=0
out=$(printf 'no\n' | script -qec "'$PUSHPOOL' -c '$T/pushpool.conf' provision apply -p md --create-environment" /dev/null) || rc=$?
[ $rc -eq 75 ] || fail "apply answered 'no' exited $rc: $out"
echo "$out" | grep -q "Only 'yes' goes on" || fail "no question asked: $out"
echo "$out" | grep -q 'not confirmed; nothing changed' || fail "no refusal: $out"
[ "$(changes)" = "{}" ] || fail "an unconfirmed apply changed something: $(changes)"

# The environment, the job variables, the credentials file.
out=$(printf 'yes\n' | script -qec "'$PUSHPOOL' -c '$T/pushpool.conf' provision apply -p md --create-environment" /dev/null) ||
	fail "apply confirmed on a terminal: $out"
out=$(printf "%s" "$out" | tr -d "\r")
echo "$out" | grep -q '\[1/1\] create environment pushpool-md' || fail "no progress line: $out"
[ "$(envs)" = '["handmade","main","pushpool-md"]' ] || fail "environments: $(envs)"
dropin="$T/pushpool.conf.d/50-provision-md.conf"
key="$T/state/provision/md/modal.toml"
[ -f "$dropin" ] && [ -f "$key" ] || fail "no drop-in or credentials file: $out"
[ "$(stat -c %a "$key")" = 600 ] || fail "credentials file mode $(stat -c %a "$key")"
grep -q 'token_secret = "as-scenario-secret"' "$key" || fail "no token in the file"
grep -q 'as-scenario-secret' "$dropin" && fail "the secret is in the drop-in"
sed -n 's/^job_variables = //p' "$dropin" | jq -e '.modal_environment == "pushpool-md"' >/dev/null ||
	fail "job variables: $(cat "$dropin")"
grep -q "^file = $key" "$dropin" || fail "the drop-in does not name the file: $(cat "$dropin")"

# 5. again: nothing to do, nothing changed.
c1=$(changes)
out=$(pp provision apply -p md --yes --create-environment </dev/null) || fail "second apply: $out"
echo "$out" | grep -q 'Nothing to do' || fail "second apply had work: $out"
pp provision plan -p md >/dev/null || fail "plan after apply exited $?"
[ "$(changes)" = "$c1" ] || fail "counters moved: $c1 -> $(changes)"
clean=$(envs)

# 6. the token now lives only in the credentials file: a run end to end.
write_conf ''
out=$(pp run -p md --wait) || fail "run --wait with the written config: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "run did not succeed: $out"

# 7. kill -9 at random points of a slowed apply; each re-run ends clean.
# (destroy takes the written credentials away: the token is configured again.)
write_conf '
[credentials "modal"]
type = modal
source = token
token_id = ak-scenario
token_secret = as-scenario-secret
'
curl -fsS -X POST -d '{"api": "modal", "latency_ms": 150}' "$BASE/control/faults" >/dev/null
n=0
interrupted=0
for delay in $(awk 'BEGIN { srand(3); for (i = 0; i < 4; i++) printf "%.2f\n", 0.1 + rand() * 0.6 }'); do
	n=$((n + 1))
	pp provision destroy -p md --yes </dev/null >"$T/out" 2>&1 || fail "destroy $n: $(cat "$T/out")"
	[ "$(envs)" = "$before" ] || fail "destroy $n left: $(envs)"
	"$PUSHPOOL" -c "$T/pushpool.conf" provision apply -p md --yes --create-environment \
		</dev/null >"$T/killed" 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	grep -q '^Wrote' "$T/killed" || interrupted=$((interrupted + 1))
	pp provision apply -p md --yes --create-environment </dev/null >"$T/out" 2>&1 ||
		fail "re-run $n after kill -9 at ${delay}s: $(cat "$T/out")"
	[ "$(envs)" = "$clean" ] || fail "kill -9 at ${delay}s, re-run $n: $(envs)"
done
[ $interrupted -ge 3 ] || fail "only $interrupted of $n kills interrupted an apply"
curl -fsS -X POST -d '{"api": "modal", "latency_ms": 0}' "$BASE/control/faults" >/dev/null

# 8. destroy: only pushpool's environment goes; the default and the
# hand-made one stay.
out=$(pp provision destroy -p md --yes </dev/null) || fail "destroy: $out"
[ "$(envs)" = "$before" ] || fail "destroy left: $(envs) (before: $before)"
[ ! -f "$dropin" ] && [ ! -e "$T/state/provision/md" ] || fail "destroy left files"
echo "ok   provision_modal: plan, wrong token, refused apply, apply asked on a terminal (no, then yes), idempotent re-apply, run --wait, $n kill -9 re-runs ($interrupted mid-apply), destroy"
