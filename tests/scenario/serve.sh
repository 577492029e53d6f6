#!/bin/sh
# `pushpool serve` as a daemon against the mock:
#  1. two serve processes on one embedded store dispatch 100 runs across the
#     four pools: every run SUCCEEDED, one remote object each (0 duplicates);
#     a run whose variables fail the schema ends FAILED with the reason and
#     blocks nobody; /healthz and /metrics answer; SIGHUP with a broken config
#     keeps the running one, with a good one reloads; SIGTERM exits 0;
#  2. `runs cancel` on running jobs stops the remote job in every pool and
#     the run ends CANCELLED, with nothing left behind.
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
	for f in "$W"/*/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 25 "$f"; }; done
	exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# count STATE: runs in that state.
count() { "$PUSHPOOL" runs -c "$T/pushpool.conf" ls --state "$1" | grep -c -- '-' || true; }
wait_for() { # SECONDS CONDITION...
	limit=$1; shift
	i=0
	while ! "$@"; do
		i=$((i + 1))
		[ $i -gt $((limit * 10)) ] && return 1
		sleep 0.1
	done
}
POOLS="cloud-run ecs aci modal"

# ---- 1. two dispatchers, one store ----
T=$W/two
mkdir -p "$T"
PORT=$(free_port)
DISPATCHER_EXTRA="lease_seconds = 5
status_interval = 0.2"
. "$ROOT/tools/mock-env.sh"
PIDS="$PIDS $MOCK_PID"
sed "/^\[dispatcher\]/a metrics_listen = 127.0.0.1:$PORT" "$T/pushpool.conf" >"$T/a.conf"
cp "$T/pushpool.conf" "$T/b.conf"
for pool in $POOLS; do
	"$PUSHPOOL" schedule -c "$T/pushpool.conf" -p "$pool" --count 25 >/dev/null
done
# Valid JSON, wrong type for the schema: must fail alone, with the reason.
bad=$("$PUSHPOOL" schedule -c "$T/pushpool.conf" -p ecs -v 'cpu="lots"' --name bad-vars)
"$PUSHPOOL" serve -c "$T/a.conf" -o dispatcher-a 2>"$T/a.log" &
A=$!
"$PUSHPOOL" serve -c "$T/b.conf" -o dispatcher-b 2>"$T/b.log" &
B=$!
PIDS="$PIDS $A $B"
done_all() { [ $(($(count SUCCEEDED) + $(count FAILED))) -ge 101 ]; }
wait_for 120 done_all || fail "runs not finished: $("$PUSHPOOL" runs -c "$T/pushpool.conf" ls | awk '{print $3}' | sort | uniq -c | tr '\n' ' ')"
[ "$(count SUCCEEDED)" = 100 ] || fail "$(count SUCCEEDED) of 100 runs SUCCEEDED"
"$PUSHPOOL" runs -c "$T/pushpool.conf" show "$bad" >"$T/bad.out"
grep -q 'FAILED' "$T/bad.out" && grep -q 'cpu' "$T/bad.out" || fail "bad run: $(cat "$T/bad.out")"
# Both dispatchers took part.
grep -q 'dispatcher-a' "$T/a.log" || true
na=$(grep -c 'submitted' "$T/a.log" || true)
nb=$(grep -c 'submitted' "$T/b.log" || true)
[ "$na" -gt 0 ] && [ "$nb" -gt 0 ] || fail "submissions: a=$na b=$nb; both should have worked"

curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || fail "/healthz"
curl -fsS "http://127.0.0.1:$PORT/metrics" >"$T/metrics"
grep -q '^pushpool_submissions_total' "$T/metrics" || fail "no submissions in /metrics"
grep -q '^pushpool_provider_latency_seconds_bucket' "$T/metrics" || fail "no latency histogram"
# The SQLite store's checkpoints, by where they ran (the loop publishes the
# store's counts).
for kind in background in_commit failed; do
	grep -q "^pushpool_store_checkpoints_total{kind=\"$kind\"} [0-9]" "$T/metrics" ||
		fail "no $kind checkpoints in /metrics"
done

# SIGHUP: a broken file is refused, the old config keeps running.
cp "$T/a.conf" "$T/a.good"
printf '[dispatcher]\nmax_in_flight = many\n' >>"$T/a.conf"
kill -HUP "$A"
wait_for 10 grep -q 'keeping the running configuration' "$T/a.log" || fail "bad reload not refused"
kill -0 "$A" || fail "serve died on a bad reload"
cp "$T/a.good" "$T/a.conf"
kill -HUP "$A"
wait_for 10 grep -q 'configuration reloaded' "$T/a.log" || fail "good reload not applied"
# A new ca_file is read at start only: the reload says so.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ca.key" \
	-out "$T/ca.pem" -subj /CN=pushpool-test -days 2 2>/dev/null
printf '[dispatcher]\nca_file = %s\n' "$T/ca.pem" >>"$T/a.conf"
kill -HUP "$A"
wait_for 10 grep -q 'reload: ca_file changed; requests trust the system' "$T/a.log" ||
	fail "a reload changing ca_file did not warn: $(tail -n 3 "$T/a.log")"
cp "$T/a.good" "$T/a.conf"

S=$T/stats.json
curl -fsS "$BASE/control/stats" >"$S"
keyed_len() { jq -r ".keyed[\"$1\"] // {} | length" "$S"; }
keyed_ones() { jq -r "[.keyed[\"$1\"] // {} | to_entries[] | select(.value == 1)] | length" "$S"; }
for map in ecs.clientToken aci.creates modal_sandbox_creates cloudrun.executions; do
	[ "$(keyed_len $map)" = 25 ] && [ "$(keyed_ones $map)" = 25 ] ||
		fail "$map: $(keyed_len $map) objects, $(keyed_ones $map) created once; want 25"
done
kill -TERM "$A" "$B"
wait "$A" || fail "serve a exited $? on SIGTERM"
wait "$B" || fail "serve b exited $? on SIGTERM"
kill "$MOCK_PID"
wait "$MOCK_PID" 2>/dev/null || true
echo "two dispatchers: 100 runs, 0 duplicates; bad variables failed alone; metrics, reload, SIGTERM ok"

# ---- 2. cancel running jobs ----
T=$W/cancel
mkdir -p "$T"
MOCK_RUN_SECONDS=600
DISPATCHER_EXTRA="status_interval = 0.2"
. "$ROOT/tools/mock-env.sh"
PIDS="$PIDS $MOCK_PID"
ids=
for pool in $POOLS; do
	ids="$ids $("$PUSHPOOL" schedule -c "$T/pushpool.conf" -p "$pool")"
done
"$PUSHPOOL" serve -c "$T/pushpool.conf" 2>"$T/serve.log" &
SV=$!
PIDS="$PIDS $SV"
all_running() { [ "$(count RUNNING)" = 4 ]; }
wait_for 60 all_running || fail "runs did not reach RUNNING: $("$PUSHPOOL" runs -c "$T/pushpool.conf" ls)"
for id in $ids; do "$PUSHPOOL" runs -c "$T/pushpool.conf" cancel "$id" >/dev/null; done
all_cancelled() { [ "$(count CANCELLED)" = 4 ]; }
wait_for 60 all_cancelled || fail "runs not CANCELLED: $("$PUSHPOOL" runs -c "$T/pushpool.conf" ls)"
curl -fsS "$BASE/control/stats" >"$T/stats.json"
for k in live_jobs live_executions live_tasks live_container_groups live_modal_sandboxes; do
	[ "$(jq -r ".live.$k" "$T/stats.json")" = 0 ] || fail "$k after cancel: $(jq -r ".live.$k" "$T/stats.json")"
done
kill -TERM "$SV"
wait "$SV" || fail "serve exited $? on SIGTERM"
echo "cancel: 4 running jobs stopped, runs CANCELLED, nothing left"

# ---- 3. overlapping cron runs of `once`, and a corrupt store ----
T=$W/cron
mkdir -p "$T"
MOCK_RUN_SECONDS=0.3
DISPATCHER_EXTRA="status_interval = 0.2"
. "$ROOT/tools/mock-env.sh"
PIDS="$PIDS $MOCK_PID"
for pool in $POOLS; do
	"$PUSHPOOL" schedule -c "$T/pushpool.conf" -p "$pool" --count 10 >/dev/null
done
"$PUSHPOOL" once -c "$T/pushpool.conf" --wait --timeout 120 >"$T/once1.out" 2>"$T/once1.log" &
O1=$!
"$PUSHPOOL" once -c "$T/pushpool.conf" --wait --timeout 120 >"$T/once2.out" 2>"$T/once2.log" &
O2=$!
wait "$O1" || fail "first once exited $?: $(cat "$T/once1.out")"
wait "$O2" || fail "second once exited $?: $(cat "$T/once2.out")"
[ "$(count SUCCEEDED)" = 40 ] || fail "$(count SUCCEEDED) of 40 runs SUCCEEDED after two overlapping once"
curl -fsS "$BASE/control/stats" >"$T/stats.json"
S=$T/stats.json
for map in ecs.clientToken aci.creates modal_sandbox_creates cloudrun.executions; do
	[ "$(keyed_len $map)" = 10 ] && [ "$(keyed_ones $map)" = 10 ] ||
		fail "overlapping once: $map: $(keyed_len $map) objects, $(keyed_ones $map) created once; want 10"
done
# A corrupt store: a clear error, exit 65, and nothing reaches the mock.
before=$(jq '[.keyed.requests // {} | to_entries[] | select(.key | test("^control") | not) | .value] | add' "$S")
mkdir -p "$T/bad"
sed "s|^state_dir = .*|state_dir = $T/bad|" "$T/pushpool.conf" >"$T/bad.conf"
head -c 8192 /dev/urandom >"$T/bad/pushpool.db"
rc=0
"$PUSHPOOL" once -c "$T/bad.conf" >/dev/null 2>"$T/bad.err" || rc=$?
[ "$rc" = 65 ] && grep -q "not a pushpool store or corrupt" "$T/bad.err" ||
	fail "corrupt store: exit $rc: $(cat "$T/bad.err")"
curl -fsS "$BASE/control/stats" >"$S"
after=$(jq '[.keyed.requests // {} | to_entries[] | select(.key | test("^control") | not) | .value] | add' "$S")
[ "$before" = "$after" ] || fail "requests reached the mock with a corrupt store ($before -> $after)"
# A service-account key that is not RSA: serve names it at startup, exit
# 65, although libcurl and OpenSSL are set up only by the first request
# (the key's shape is checked without them, lib/pem.h); nothing is sent.
openssl ecparam -name prime256v1 -genkey -noout -out "$T/ec.pem" 2>/dev/null
jq --rawfile k "$T/ec.pem" '.private_key = $k' "$T/sa.json" >"$T/ec.json"
chmod 600 "$T/ec.json"
sed "s|^file = .*sa.json$|file = $T/ec.json|" "$T/pushpool.conf" >"$T/ec.conf"
grep -q "^file = $T/ec.json$" "$T/ec.conf" || fail "no service-account key file in pushpool.conf"
rc=0
timeout 60 "$PUSHPOOL" serve -c "$T/ec.conf" >/dev/null 2>"$T/ec.err" || rc=$?
[ "$rc" = 65 ] && grep -q "ec.json: private_key is not a PEM RSA key" "$T/ec.err" ||
	fail "EC service-account key: exit $rc: $(cat "$T/ec.err")"
curl -fsS "$BASE/control/stats" >"$S"
[ "$before" = "$(jq '[.keyed.requests // {} | to_entries[] | select(.key | test("^control") | not) | .value] | add' "$S")" ] ||
	fail "requests reached the mock with an EC service-account key"
echo "cron: two overlapping once --wait, 40 runs, 0 duplicates; corrupt store and EC key refused (exit 65)"
