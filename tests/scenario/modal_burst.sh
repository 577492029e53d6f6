#!/bin/sh
# A burst of Modal submissions, 200 at once, each gRPC call on its own h2c
# connection: the mock must queue connections beyond its capacity as a real
# server does, not drop them (it used to close any past 64, and 1 run in 25
# went DEAD with "Broken pipe"). Every run SUCCEEDED, one sandbox each.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
T=$(mktemp -d)
MOCK_PID=
trap '[ -n "$MOCK_PID" ] && kill $MOCK_PID 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; tail -n 5 "$T/once.err"; exit 1; }
DISPATCHER_EXTRA="max_submitting = 200
max_in_flight = 1000
status_interval = 0.5"
. "$ROOT/tools/mock-env.sh"
"$PUSHPOOL" schedule -c "$T/pushpool.conf" -p modal --count 400 >/dev/null
"$PUSHPOOL" once -c "$T/pushpool.conf" --wait --timeout 120 >"$T/once.out" 2>"$T/once.err" ||
	fail "once exited $?: $(cat "$T/once.out")"
states=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls | awk 'NR > 1 { print $3 }' | sort | uniq -c | tr -s ' \n' ' ')
[ "$states" = " 400 SUCCEEDED " ] || fail "run states:$states"
S=$T/stats.json
curl -fsS "$BASE/control/stats" >"$S"
n=$(jq -r '[.keyed.modal_sandbox_creates // {} | to_entries[] | select(.value == 1)] | length' "$S")
[ "$n" = 400 ] || fail "$n runs made exactly one sandbox; want 400"
! grep -q 'Broken pipe' "$T/once.err" || fail "connections were dropped"
echo "400 Modal runs, 200 submitting at once: all SUCCEEDED, one sandbox each"
