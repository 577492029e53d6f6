#!/bin/sh
# A self-hosted Prefect server run with PREFECT_SERVER_API_AUTH_STRING and
# PREFECT_SERVER_CSRF_PROTECTION_ENABLED, on Cloud Run and ACI: pushpool
# authenticates with Basic auth from api_auth_string_file (no API key),
# sends a CSRF token with every change request (claims, infrastructure_pid),
# and passes PREFECT_API_AUTH_STRING to the jobs, whose simulated flows
# can only report their states with it. The auth string never reaches the
# log.
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
	for f in "$T/serve.log" "$T/mock.log"; do [ -f "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
	exit 1
}
. "$ROOT/tests/scenario/prefect_lib.inc"
POOLS="cloud-run aci"
pf_setup_pools $POOLS
: >"$T/ids"
for pool in $POOLS; do
	eval dep=\$DEP_$(echo "$pool" | tr - _)
	for i in 1 2 3; do
		pf POST "/deployments/$dep/create_flow_run" '{}' | jq -r .id >>"$T/ids"
	done
done

# The server now wants Basic auth and CSRF tokens, and no longer a key.
AUTH=admin:pf-basic-pass-8c1e7d
printf '%s\n' "$AUTH" >"$T/auth"
chmod 600 "$T/auth"
sed -i '/^api_key_file = /d' "$T/pushpool.conf"
echo "api_auth_string_file = $T/auth" >>"$T/pushpool.conf"
curl -fsS -X POST -d "{\"auth_string\":\"$AUTH\",\"csrf\":true}" "$BASE/prefect/control/auth" >/dev/null
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PF_KEY" "$PF/work_pools/aci")" = 401 ] ||
	fail "the server still takes the key"
"$PUSHPOOL" check -c "$T/pushpool.conf" >/dev/null || fail "check refused the configuration"

"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve.log" 2>&1 &
SV=$!
run() { curl -fsS -u "$AUTH" "$PF/flow_runs/$1"; }
# A flow can end before pushpool has seen its infrastructure up (ACI's
# create takes seconds): its infrastructure_pid may come after COMPLETED.
all_reported() {
	while read -r id; do
		run "$id" | jq -e '.state_type == "COMPLETED" and (.infrastructure_pid | length > 0)' \
			>/dev/null || return 1
	done <"$T/ids"
}
wait_for 60 all_reported || fail "runs (state, infrastructure_pid): $(while read -r id; do
	run "$id" | jq -r '"\(.state_type) \(.infrastructure_pid // "none")"'
done <"$T/ids" | sort | uniq -c)"
stats >"$T/stats.json"
[ "$(jq '.counters["prefect.csrf_tokens"] // 0' "$T/stats.json")" -ge 1 ] || fail "no CSRF token was fetched"
[ "$(jq '.keyed["prefect.csrf_refused"] // {} | length' "$T/stats.json")" = 0 ] ||
	fail "change requests refused: $(jq -c '.keyed["prefect.csrf_refused"]' "$T/stats.json")"
[ "$(jq '.keyed["prefect.flows_unauthorized"] // {} | length' "$T/stats.json")" = 0 ] ||
	fail "flows without the auth string: $(jq -c '.keyed["prefect.flows_unauthorized"]' "$T/stats.json")"
pending=$(jq '[.keyed["prefect.pending_accepted"][]] | add' "$T/stats.json")
[ "$pending" = 6 ] || fail "$pending PENDING claims accepted, want 6"
# Every run over in the store too (its job cleaned up) before serve stops.
stored_done() {
	[ "$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls --state SUCCEEDED 2>/dev/null | grep -c -- '-')" = 6 ]
}
wait_for 60 stored_done || fail "runs not over in the store: $("$PUSHPOOL" runs -c "$T/pushpool.conf" ls)"
kill -TERM "$SV"
wait "$SV" || fail "serve exited $? on SIGTERM"
SV=
! grep -q "pf-basic-pass" "$T/serve.log" || fail "the auth string reached the log"
echo "ok: 6 runs on a server with Basic auth and CSRF protection: claimed, tracked and COMPLETED by flows given PREFECT_API_AUTH_STRING"
