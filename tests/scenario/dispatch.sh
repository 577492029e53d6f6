#!/bin/sh
# The dispatch loop end to end: 200 runs across the four pool types in the
# embedded store, with the mock dropping 3% of answers after it acted and
# throttling 3% of requests. Every run must end SUCCEEDED with exactly one
# remote job each (mock counters): no duplicates, none lost.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
trap '[ -n "${KEEP_T:-}" ] || rm -rf "$T"' EXIT
RUNS=50
export RUNS
KEEP_DIR=$T/demo MOCK_FAULTS='{"api":"ecs","reset_after_action_rate":0.03,"throttle_rate":0.03,"retry_after":0}
{"api":"cloudrun","reset_after_action_rate":0.03,"throttle_rate":0.03,"retry_after":0}
{"api":"aci","reset_after_action_rate":0.03,"throttle_rate":0.03,"retry_after":0}
{"api":"modal","throttle_rate":0.03,"retry_after":0}' \
	sh tools/demo.sh "$PUSHPOOL" >"$T/out" 2>&1 || { cat "$T/out"; exit 1; }
grep -q "== all $((RUNS * 4)) runs SUCCEEDED" "$T/out" || { cat "$T/out"; exit 1; }
S=$T/demo/stats.json
fail() { echo "FAIL: $*"; cat "$S"; exit 1; }
counter() { jq -r ".counters[\"$1\"] // 0" "$S"; }
# Keyed maps hold one entry per remote object (name or token -> count):
# RUNS entries, every count 1, means one object per run and no duplicates.
keyed_ones() { jq -r "[.keyed[\"$1\"] // {} | to_entries[] | select(.value == 1)] | length" "$S"; }
keyed_len() { jq -r ".keyed[\"$1\"] // {} | length" "$S"; }
[ "$(counter RunTaskStarted)" = "$RUNS" ] || fail "ECS tasks started: $(counter RunTaskStarted), want $RUNS"
[ "$(counter cloudrun.creates)" = "$RUNS" ] || fail "Cloud Run jobs created: $(counter cloudrun.creates), want $RUNS"
for map in ecs.clientToken aci.creates modal_sandbox_creates cloudrun.executions; do
	[ "$(keyed_len $map)" = "$RUNS" ] && [ "$(keyed_ones $map)" = "$RUNS" ] ||
		fail "$map: $(keyed_len $map) objects, $(keyed_ones $map) created once; want $RUNS and $RUNS"
done
# Nothing left behind: every job, task, group and sandbox was cleaned up.
for k in live_jobs live_executions live_tasks live_container_groups live_modal_sandboxes; do
	[ "$(jq -r ".live.$k" "$S")" = 0 ] || fail "$k left: $(jq -r ".live.$k" "$S")"
done
[ "$(jq -r '[.keyed.injected // {} | .[]] | add // 0' "$S")" -gt 0 ] || fail "no faults were injected"
echo "$((RUNS * 4)) runs under injected faults, one remote object each, none left"
