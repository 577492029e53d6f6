#!/bin/sh
# The sweeper (dispatcher/sweep.c, issue 18): objects carrying pushpool's
# label whose run is unknown to the store (or finished) are removed once
# older than the grace (10 minutes); everything else stays. Planted on the
# mock for Cloud Run and ACI, per cloud:
#   orphan    labelled, run unknown, created 15 minutes ago   -> removed
#   young     labelled, run unknown, created just now          -> kept (grace)
#   live      labelled with a run scheduled in the store, old  -> kept
#   foreign   no label, old                                    -> kept (never listed)
# `serve` sweeps every sweep_interval and reports in /metrics; `once` sweeps
# at its end.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
MOCK_PID=
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
DISPATCHER_EXTRA="sweep_interval = 1"
. "$(dirname "$0")/../../tools/mock-env.sh"

stats() { curl -fsS "$BASE/control/stats" | tr -d ' \n'; }
stat() {
	stats | grep -o "\"$1\":[0-9]*" | head -n 1 | sed 's/.*://' | grep . || echo 0
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
C="$T/pushpool.conf"
JOBS=projects/demo-proj/locations/europe-west1/jobs
GROUPS=/subscriptions/$SUB/resourceGroups/rg-flows/providers/Microsoft.ContainerInstance/containerGroups
UNKNOWN=0b5e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b

plant() { # API BODY
	curl -fsS -X POST -H 'Content-Type: application/json' -d "$2" "$BASE/$1/control/orphan" \
		>/dev/null || fail "plant on $1: $2"
}
# Runs that stay SCHEDULED: their objects belong to live runs.
for p in cloud-run aci; do
	"$PUSHPOOL" schedule -c "$C" -p $p --at 2099-01-01T00:00:00Z >"$T/id.$p" 2>"$T/err" ||
		fail "schedule $p: $(cat "$T/err")"
done
LIVE_CR=$(cat "$T/id.cloud-run")
LIVE_ACI=$(cat "$T/id.aci")

plant google "{\"job\":\"$JOBS/pp-orphan\",\"run_id\":\"$UNKNOWN\",\"age_seconds\":900}"
plant google "{\"job\":\"$JOBS/pp-young\",\"run_id\":\"$UNKNOWN\",\"age_seconds\":0}"
plant google "{\"job\":\"$JOBS/pp-live\",\"run_id\":\"$LIVE_CR\",\"age_seconds\":900}"
plant google "{\"job\":\"$JOBS/foreign\",\"age_seconds\":900}"
plant azure "{\"id\":\"$GROUPS/pp-orphan\",\"run_id\":\"$UNKNOWN\",\"age_seconds\":900}"
plant azure "{\"id\":\"$GROUPS/pp-young\",\"run_id\":\"$UNKNOWN\",\"age_seconds\":0}"
plant azure "{\"id\":\"$GROUPS/pp-live\",\"run_id\":\"$LIVE_ACI\",\"age_seconds\":900}"
plant azure "{\"id\":\"$GROUPS/foreign\",\"age_seconds\":900}"
[ "$(stat live_jobs)" -eq 4 ] && [ "$(stat live_container_groups)" -eq 4 ] ||
	fail "planting: $(stats)"

# serve sweeps one interval after it starts, and every interval after that:
# the kept objects stay however often it looks.
PORT=$(free_port)
sed "/^\[dispatcher\]/a metrics_listen = 127.0.0.1:$PORT" "$C" >"$T/serve.conf"
"$PUSHPOOL" serve -c "$T/serve.conf" >"$T/serve.out" 2>"$T/serve.err" &
SERVE_PID=$!
i=0
until [ "$(stat live_jobs)" -eq 3 ] && [ "$(stat live_container_groups)" -eq 3 ] &&
	curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null >"$T/metrics" &&
	grep -q 'pushpool_swept_objects_total{pool="aci"} 1' "$T/metrics" &&
	grep -q 'pushpool_swept_objects_total{pool="cloud-run"} 1' "$T/metrics"; do
	i=$((i + 1))
	[ $i -le 600 ] || fail "serve did not sweep the orphans: $(stats) $(cat "$T/serve.err")"
	sleep 0.1
done
grep -q '^# HELP pushpool_swept_objects_total ' "$T/metrics" || fail "no HELP line: $(cat "$T/metrics")"
grep -q "swept $JOBS/pp-orphan: run $UNKNOWN is unknown to the store" "$T/serve.err" ||
	fail "no log line for the Cloud Run orphan: $(cat "$T/serve.err")"
# (the log redacts the subscription id: the Azure credential registers it)
grep -q "containerGroups/pp-orphan: run $UNKNOWN is unknown to the store" "$T/serve.err" ||
	fail "no log line for the ACI orphan: $(cat "$T/serve.err")"
[ "$(grep -c 'swept ' "$T/serve.err")" -eq 2 ] || fail "swept more: $(cat "$T/serve.err")"
kill "$SERVE_PID"
wait "$SERVE_PID" || true
SERVE_PID=

# once sweeps at its end: a finished run's job goes too.
"$PUSHPOOL" runs -c "$C" cancel "$LIVE_CR" >/dev/null 2>"$T/err" || fail "cancel: $(cat "$T/err")"
timeout 120 "$PUSHPOOL" once -c "$C" >"$T/once.out" 2>"$T/once.err" ||
	fail "once: $(cat "$T/once.out" "$T/once.err")"
grep -q "swept $JOBS/pp-live: run $LIVE_CR is CANCELLED" "$T/once.err" ||
	fail "once did not sweep the cancelled run's job: $(cat "$T/once.err")"
[ "$(stat live_jobs)" -eq 2 ] && [ "$(stat live_container_groups)" -eq 3 ] ||
	fail "after once: $(stats)"
echo "ok: orphans swept (serve and once), young, live and foreign objects kept"
