#!/bin/sh
# The operator dashboards (deploy/grafana, deploy/prometheus) against the
# metrics pushpool really serves:
#  1. the alerting rules pass `promtool check rules` and their own unit
#     tests (`promtool test rules`: each alert fires on the series that
#     should raise it and not on healthy ones);
#  2. every Grafana panel query is valid PromQL (checked by promtool as a
#     recording rule, with the dashboard's variables filled in);
#  3. every metric the rules and the dashboard name is one that `serve`
#     exposes on /metrics after dispatching a run on each of the four
#     clouds (`up` is Prometheus's own and the one exception).
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
W=$(mktemp -d)
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*"
	for f in "$W"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 25 "$f"; }; done
	exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # SECONDS CONDITION...
	limit=$1; shift
	i=0
	while ! "$@"; do
		i=$((i + 1))
		[ $i -gt $((limit * 10)) ] && return 1
		sleep 0.1
	done
}
RULES=$ROOT/deploy/prometheus/pushpool.rules.yml
DASH=$ROOT/deploy/grafana/pushpool.json

# ---- 1. rules ----
promtool check rules "$RULES" >"$W/check.log" 2>&1 || fail "promtool check rules: $(cat "$W/check.log")"
(cd "$ROOT/deploy/prometheus" && promtool test rules pushpool.rules.test.yml) >"$W/test.log" 2>&1 ||
	fail "promtool test rules: $(cat "$W/test.log")"
nalerts=$(grep -c '^ *- alert:' "$RULES")
for a in $(sed -n 's/^ *- alert: *//p' "$RULES"); do
	grep -q "alertname: $a\$" "$ROOT/deploy/prometheus/pushpool.rules.test.yml" ||
		fail "alert $a has no unit test in pushpool.rules.test.yml"
done

# ---- 2. dashboard queries are PromQL ----
jq -e '.panels | length > 0' "$DASH" >/dev/null || fail "dashboard has no panels"
{
	echo "groups:"
	echo "  - name: dashboard"
	echo "    rules:"
	jq -r '.panels[].targets[].expr' "$DASH" | sed 's/\$instance/.*/g' | awk '{
		gsub(/\\/, "\\\\"); gsub(/"/, "\\\"");
		printf "      - record: dashboard:query_%d\n        expr: \"%s\"\n", NR, $0 }'
} >"$W/dashboard.rules.yml"
nq=$(jq '[.panels[].targets[]] | length' "$DASH")
promtool check rules "$W/dashboard.rules.yml" >"$W/dq.log" 2>&1 ||
	fail "dashboard queries are not valid PromQL: $(cat "$W/dq.log")"
grep -q "SUCCESS: $nq rules found" "$W/dq.log" || fail "expected $nq queries checked: $(cat "$W/dq.log")"

# ---- 3. every metric named exists on a running serve ----
T=$W/serve
mkdir -p "$T"
PORT=$(free_port)
. "$ROOT/tools/mock-env.sh"
PIDS="$PIDS $MOCK_PID"
sed "/^\[dispatcher\]/a metrics_listen = 127.0.0.1:$PORT" "$T/pushpool.conf" >"$T/serve.conf"
for pool in cloud-run ecs aci modal; do
	"$PUSHPOOL" schedule -c "$T/serve.conf" -p "$pool" >/dev/null
done
"$PUSHPOOL" serve -c "$T/serve.conf" 2>"$W/serve.log" &
PIDS="$PIDS $!"
succeeded() { [ "$("$PUSHPOOL" runs -c "$T/serve.conf" ls --state SUCCEEDED | grep -c -- '-' || true)" -ge 4 ]; }
wait_for 120 succeeded || fail "runs did not succeed"
# The loop publishes its snapshot every second: wait for one with the runs.
scraped() {
	curl -fsS "http://127.0.0.1:$PORT/metrics" >"$W/metrics" 2>/dev/null &&
		grep -q '^pushpool_runs{state="SUCCEEDED"} 4' "$W/metrics"
}
wait_for 30 scraped || fail "/metrics never showed the 4 runs: $(head -c 2000 "$W/metrics")"
promtool check metrics <"$W/metrics" >"$W/lint.log" 2>&1 || fail "promtool check metrics: $(cat "$W/lint.log")"
served=$(sed -n 's/^\([a-z_:][a-z0-9_:]*\).*/\1/p' "$W/metrics" | grep -v '^#' | sort -u)
named=$({ grep -o 'pushpool_[a-z0-9_]*' "$RULES"; jq -r '.panels[].targets[].expr, .templating.list[].definition // empty' "$DASH" | grep -o 'pushpool_[a-z0-9_]*'; } | sort -u)
missing=
for n in $named; do
	printf '%s\n' "$served" | grep -qx "$n" || missing="$missing $n"
done
[ -z "$missing" ] || fail "named by the dashboards but not served on /metrics:$missing"
# Each provider that dispatched shows in the labelled counters.
for prov in $(sed -n 's/^pushpool_provider_requests_total{provider="\([^"]*\)"}.*/\1/p' "$W/metrics"); do
	grep -q "^pushpool_provider_latency_seconds_count{provider=\"$prov\"}" "$W/metrics" ||
		fail "no latency histogram for provider $prov"
done
[ "$(grep -c '^pushpool_provider_requests_total{provider=' "$W/metrics")" -eq 4 ] ||
	fail "expected requests counted for 4 providers: $(grep provider_requests "$W/metrics")"
echo "ok: $nalerts alerts tested, $nq dashboard queries checked, $(printf '%s\n' $named | wc -l) metric names served"
