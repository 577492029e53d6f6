#!/bin/sh
# A flow run moved to CANCELLING on the Prefect server (as `prefect
# flow-run cancel` does) has its remote job stopped, in each of the four
# pools, and ends CANCELLED on the server and in the store.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
T=$(mktemp -d)
MOCK_PID=
SV=
cleanup() {
	for p in $SV $MOCK_PID; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*"
	for f in "$T/serve.log" "$T/mock.log"; do [ -f "$f" ] && { echo "== $f"; tail -n 20 "$f"; }; done
	exit 1
}
MOCK_RUN_SECONDS=600
. "$ROOT/tests/scenario/prefect_lib.inc"
POOLS="cloud-run ecs aci modal"
pf_setup_pools $POOLS
for pool in $POOLS; do pf_runs "$pool" 1; done
"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve.log" 2>&1 &
SV=$!
all_running() { [ "$(pf_count RUNNING)" = 4 ]; }
wait_for 60 all_running || fail "runs did not reach RUNNING on the server: $(pf_count RUNNING)"
for id in $(pf POST /flow_runs/filter '{}' | jq -r '.[].id'); do
	pf POST "/flow_runs/$id/set_state" '{"state":{"type":"CANCELLING"},"force":true}' >/dev/null
done
all_cancelled() { [ "$(pf_count CANCELLED)" = 4 ]; }
wait_for 60 all_cancelled || fail "runs not CANCELLED: $(pf POST /flow_runs/filter '{}' | jq -c '[.[].state_type]')"
stats >"$T/stats.json"
for k in live_jobs live_executions live_tasks live_container_groups live_modal_sandboxes; do
	[ "$(jq -r ".live.$k" "$T/stats.json")" = 0 ] || fail "$k after cancel: $(jq -r ".live.$k" "$T/stats.json")"
done
kill -TERM "$SV"
wait "$SV" || fail "serve exited $? on SIGTERM"
SV=
n=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls --state CANCELLED | grep -c -- '-' || true)
[ "$n" = 4 ] || fail "$n runs CANCELLED in the store"
echo "ok: 4 CANCELLING flow runs stopped remotely and CANCELLED"
