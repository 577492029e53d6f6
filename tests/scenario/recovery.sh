#!/bin/sh
# kill -9 recovery: `serve` is killed at random points eight times while
# dispatching 500 runs across the four pools (the mock dropping 2% of
# answers after acting and throttling 2%), restarted each time, then a final
# `once --wait` finishes. Every run ends SUCCEEDED with exactly one remote
# object (no retry or recovery may name a second one), nothing is left
# behind, and a dead dispatcher's leases are taken over at once.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
T=$(mktemp -d)
MOCK_PID=
SV=
trap '[ -n "$SV" ] && kill -9 $SV 2>/dev/null; [ -n "$MOCK_PID" ] && kill $MOCK_PID 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; tail -n 20 "$T/serve.log"; exit 1; }
MOCK_RUN_SECONDS=0.5
# A lease far longer than the test: only the dead-owner check can free them.
DISPATCHER_EXTRA="lease_seconds = 600
status_interval = 0.2"
. "$ROOT/tools/mock-env.sh"
for pool in cloud-run ecs aci modal; do
	"$PUSHPOOL" schedule -c "$T/pushpool.conf" -p "$pool" --count 125 >/dev/null
done
curl -fsS -X POST -d '{"reset_after_action_rate":0.02,"throttle_rate":0.02,"retry_after":1}' \
	"$BASE/control/faults" >/dev/null
i=0
while [ $i -lt 8 ]; do
	"$PUSHPOOL" serve -c "$T/pushpool.conf" 2>>"$T/serve.log" &
	SV=$!
	sleep "$(awk -v s="$i$$" 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 1.5 }')"
	kill -9 "$SV"
	wait "$SV" 2>/dev/null || true
	SV=
	i=$((i + 1))
done
"$PUSHPOOL" once -c "$T/pushpool.conf" --wait --timeout 120 >"$T/once.out" 2>>"$T/serve.log" ||
	fail "once after the kills exited $?: $(cat "$T/once.out")"
states=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls | awk 'NR > 1 { print $3 }' | sort | uniq -c | tr -s ' \n' ' ')
[ "$states" = " 500 SUCCEEDED " ] ||
	fail "run states after recovery:$states
$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls | grep -v SUCCEEDED | head -n 8)"
S=$T/stats.json
curl -fsS "$BASE/control/stats" >"$S"
for map in ecs.clientToken aci.creates modal_sandbox_creates cloudrun.executions; do
	len=$(jq -r ".keyed[\"$map\"] // {} | length" "$S")
	ones=$(jq -r "[.keyed[\"$map\"] // {} | to_entries[] | select(.value == 1)] | length" "$S")
	[ "$len" = 125 ] && [ "$ones" = 125 ] || fail "$map: $len objects, $ones created once; want 125"
done
for k in live_jobs live_executions live_tasks live_container_groups live_modal_sandboxes; do
	[ "$(jq -r ".live.$k" "$S")" = 0 ] || fail "$k left: $(jq -r ".live.$k" "$S")"
done
echo "kill -9 x8 during 500 runs: all SUCCEEDED, one remote object each, nothing left"
