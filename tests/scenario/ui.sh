#!/bin/sh
# The status page in a real browser (Debian's Chromium, headless) against
# `serve` on the mock, with runs in several states on the four clouds:
#  1. the overview lists every pool with its runs by state (a paused one
#     as paused), a deployment with its schedule and next runs, the chart,
#     and the recent runs; a run named with HTML and script shows as text (no
#     element made from it, no script run);
#  2. filtering by state (#/?state=FAILED) shows the failed runs only;
#  3. a run's page shows its fields, the error and its events, and a run
#     that ran shows its output, read from its cloud;
#  4. with metrics_listen off loopback, the page and /api/ answer 401
#     without ui_token_file's token and 200 with it; /metrics stays open.
# Screenshots for review go to build/ui-screenshots/.
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
	for f in "$W"/*.log "$W"/*.dom; do [ -f "$f" ] && { echo "== $f"; tail -c 3000 "$f"; echo; }; done
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
SHOTS=$ROOT/build/ui-screenshots
mkdir -p "$SHOTS"
# Chromium as the machine notes say it runs here: no sandbox (root), no
# background connections (the network is closed), a fresh profile.
browser() { # OUT URL [extra flags]: the DOM after the page's scripts ran
	out=$1 url=$2
	shift 2
	timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$(mktemp -d "$W/profile.XXXXXX")" --window-size=1400,1100 \
		--virtual-time-budget=4000 "$@" "$url" >"$out" 2>>"$W/chromium.log"
}
dom() { # NAME URL: the page's DOM once it has loaded (data-loaded="1")
	for attempt in 1 2 3; do
		browser "$W/$1.dom" "$2" --dump-dom || true
		grep -q 'data-loaded="1"' "$W/$1.dom" && return 0
	done
	fail "$1: the page did not load: $(tail -c 1500 "$W/$1.dom")"
}

T=$W/mock
mkdir -p "$T"
PORT=$(free_port)
. "$ROOT/tools/mock-env.sh"
PIDS="$PIDS $MOCK_PID"
sed "/^\[dispatcher\]/a metrics_listen = 127.0.0.1:$PORT" "$T/pushpool.conf" >"$T/serve.conf"
C=$T/serve.conf
for pool in cloud-run ecs aci modal; do
	"$PUSHPOOL" schedule -c "$C" -p "$pool" --count 2 >/dev/null
done
HOSTILE='<img src=x onerror="document.title=1"><script>document.title="pwned"</script>'
hostile=$("$PUSHPOOL" schedule -c "$C" -p modal --name "$HOSTILE")
# Valid JSON of the wrong type for the schema: FAILED, with the reason.
bad=$("$PUSHPOOL" schedule -c "$C" -p ecs -v 'cpu="lots"' --name bad-vars)
later=$("$PUSHPOOL" schedule -c "$C" -p aci --in 1h --name later)
# An ECS run whose output goes to CloudWatch Logs (section 3b reads it).
ok_ecs=$("$PUSHPOOL" schedule -c "$C" -p ecs --name logged \
	-v configure_cloudwatch_logs=true -v 'execution_role_arn="arn:aws:iam::123456789012:role/exec"')
gone=$("$PUSHPOOL" schedule -c "$C" -p cloud-run --in 2h --name cancelled-early)
"$PUSHPOOL" runs -c "$C" cancel "$gone" >/dev/null
# A deployment on a daily cron (a pool is paused store-wide once the runs
# have settled).
cat >"$T/prefect.yaml" <<'YAML'
deployments:
  - name: nightly-report
    entrypoint: flows/report.py:main
    work_pool:
      name: ecs
    schedules:
      - cron: "0 7 * * *"
        timezone: Europe/Berlin
YAML
"$PUSHPOOL" deploy -c "$C" --file "$T/prefect.yaml" >"$W/deploy.log" 2>&1 || fail "deploy: $(cat "$W/deploy.log")"
"$PUSHPOOL" serve -c "$C" 2>"$W/serve.log" &
PIDS="$PIDS $!"
n() { "$PUSHPOOL" runs -c "$C" ls --state "$1" | grep -c -- '-' || true; }
settled() { [ "$(n SUCCEEDED)" -ge 10 ] && [ "$(n FAILED)" -ge 1 ]; }
wait_for 120 settled || fail "runs did not settle: $("$PUSHPOOL" runs -c "$C" ls)"
"$PUSHPOOL" pool -c "$C" pause aci >/dev/null || fail "pool pause"
URL=http://127.0.0.1:$PORT/

# ---- 1. overview ----
dom overview "$URL"
for pool in cloud-run ecs aci modal; do
	grep -q "data-pool=\"$pool\"" "$W/overview.dom" || fail "pool $pool not listed"
done
grep -q "data-run=\"$hostile\"" "$W/overview.dom" || fail "hostile run not listed"
grep -q "data-run=\"$later\"" "$W/overview.dom" || fail "scheduled run not listed"
grep -q 'data-state="CANCELLED"' "$W/overview.dom" || fail "no CANCELLED run shown"
grep -q 'data-series="started"' "$W/overview.dom" || fail "no activity chart"
grep -q 'data-deployment="nightly-report"' "$W/overview.dom" || fail "deployment not listed"
grep -q 'cron 0 7 \* \* \* (Europe/Berlin)' "$W/overview.dom" || fail "deployment's schedule not shown"
grep -q 'href="#/runs/[0-9a-f-]*">20[0-9-]* 0[56]:00:00Z' "$W/overview.dom" ||
	fail "deployment's next runs (07:00 Berlin) not shown"
grep -q 'data-settings="paused"' "$W/overview.dom" || fail "the paused pool is not shown paused"
# The name is text: escaped in the DOM, no img or script element from it,
# and the title its script would have changed is intact.
grep -q '&lt;script&gt;document.title="pwned"&lt;/script&gt;' "$W/overview.dom" ||
	fail "hostile name not shown as text"
grep -q '<img src="x"' "$W/overview.dom" && fail "hostile name became an element"
grep -q '<title>pushpool</title>' "$W/overview.dom" || fail "a script from the run name ran"
browser "$W/shot.log" "$URL" --screenshot="$SHOTS/overview.png" || true
[ -s "$SHOTS/overview.png" ] || fail "no screenshot"

# ---- 2. filter ----
dom failed "${URL}#/?state=FAILED"
grep -q "data-run=\"$bad\"" "$W/failed.dom" || fail "failed run not in the FAILED view"
rows=$(grep -o 'data-run="' "$W/failed.dom" | wc -l)
[ "$rows" = "$(n FAILED)" ] || fail "FAILED view shows $rows rows, the store has $(n FAILED)"
grep -q "data-run=\"$hostile\"" "$W/failed.dom" && fail "a SUCCEEDED run in the FAILED view"

# ---- 3. a run ----
dom run "${URL}#/runs/$bad"
grep -q 'id="run-fields"' "$W/run.dom" || fail "run page has no fields"
grep -q "$bad" "$W/run.dom" || fail "run page does not show the run id"
grep -q 'id="events"' "$W/run.dom" || fail "run page has no events"
grep -q 'cpu' "$W/run.dom" || fail "run page does not show the error"
browser "$W/shot.log" "${URL}#/runs/$bad" --screenshot="$SHOTS/run.png" || true
# A run that ran: its output from the cloud, read by the page.
ok_modal=$("$PUSHPOOL" runs -c "$C" ls --state SUCCEEDED --pool modal | awk '$1 ~ /^[0-9a-f]+-/ { print $1; exit }')
[ -n "$ok_modal" ] || fail "no SUCCEEDED modal run listed"

logged() {
	browser "$W/runlog.dom" "${URL}#/runs/$ok_modal" --dump-dom || true
	grep -q 'data-lines="[1-9]' "$W/runlog.dom"
}
tries=0
until logged; do
	tries=$((tries + 1))
	[ $tries -lt 10 ] || break
	sleep 1
done
logged || fail "run page shows no output for $ok_modal: $(grep -o '<pre[^>]*>[^<]*' "$W/runlog.dom")"
grep -q 'pushpool-mock: done' "$W/runlog.dom" || fail "the job's last line is not on its page"
browser "$W/shot.log" "${URL}#/runs/$ok_modal" --screenshot="$SHOTS/run-log.png" || true

# ---- 3b. a cloud that is slow to give a log holds only that request ----
# The mock holds the next GetLogEvents until a second one comes, or for
# 20 s (under the dispatcher's 30 s request timeout, whose retry would
# otherwise be the second call). Two page requests for an ECS run's log at
# once can only both pass the barrier if the listener serves them side by
# side; one after the other, the first would wait out the barrier alone.
curl -fsS -X POST -H 'Content-Type: application/json' \
	-d '{"action":"GetLogEvents","count":2,"timeout_ms":20000}' \
	"$BASE/aws/control/barrier" >/dev/null || fail "barrier"
for i in 1 2; do
	curl -s -o "$W/log$i.json" -w '%{http_code}' "${URL}api/runs/$ok_ecs/logs" >"$W/log$i.code" &
	eval "LOGREQ$i=\$!"
done
wait "$LOGREQ1" "$LOGREQ2" || true
for i in 1 2; do
	[ "$(cat "$W/log$i.code")" = 200 ] || fail "log request $i: HTTP $(cat "$W/log$i.code"): $(cat "$W/log$i.json")"
	grep -q 'pushpool-mock: done' "$W/log$i.json" || fail "log request $i has not the job's output"
done
stats=$(curl -fsS "$BASE/control/stats" | tr -d ' \n')
echo "$stats" | grep -q '"ecs.barrier_passed":{"GetLogEvents":2}' ||
	fail "two log requests were not served side by side: $stats"

# ---- 4. off loopback: the token ----
IP=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
if [ -z "$IP" ]; then
	IP=0.0.0.0 # no other address: bind all, reach it on loopback
	REACH=127.0.0.1
else
	REACH=$IP
fi
P2=$(free_port)
printf 'tok-%s\n' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" >"$T/ui-token"
chmod 600 "$T/ui-token"
TOKEN=$(cat "$T/ui-token")
sed -e "/^\[dispatcher\]/a metrics_listen = $IP:$P2" -e "/^\[dispatcher\]/a ui_token_file = $T/ui-token" \
	"$T/pushpool.conf" >"$T/open.conf"
sed "/^\[dispatcher\]/a metrics_listen = $IP:$P2" "$T/pushpool.conf" >"$T/notoken.conf"
"$PUSHPOOL" serve -c "$T/open.conf" -o open 2>"$W/open.log" &
PIDS="$PIDS $!"
up() { curl -s -o /dev/null "http://$REACH:$P2/healthz"; }
wait_for 30 up || fail "serve on $IP did not listen"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "http://$REACH:$P2/")" = 401 ] || fail "page served without the token"
[ "$(code "http://$REACH:$P2/api/runs")" = 401 ] || fail "/api/ served without the token"
[ "$(code -H "Authorization: Bearer wrong" "http://$REACH:$P2/api/runs")" = 401 ] || fail "wrong token accepted"
[ "$(code -H "Authorization: Bearer $TOKEN" "http://$REACH:$P2/api/runs")" = 200 ] || fail "token refused"
[ "$(code -u "me:$TOKEN" "http://$REACH:$P2/")" = 200 ] || fail "token as Basic password refused"
[ "$(code "http://$REACH:$P2/metrics")" = 200 ] || fail "/metrics needs no token"
grep -q "$TOKEN" "$W/open.log" && fail "the token reached the log"
echo "ok: overview, filter, run page, two slow log reads side by side and token checked; screenshots in $SHOTS"
