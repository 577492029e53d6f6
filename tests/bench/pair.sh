#!/bin/sh
# Diagnosis behind docs/performance.md's step 38, not part of `make bench`:
# alternated passes of `serve` (one per binary given) and of the bare
# client against one warm mock, with each side's CPU a run and the mock's
# from /proc/PID/stat (utime + stime).
#   sh tests/bench/pair.sh BUILD POOL RUNS ROUNDS [PUSHPOOL_BINARY...]
# PAIR_PIN=1 pins the mock to CPU 1 and both clients to CPU 0 (taskset);
# PAIR_CONCURRENCY [32] is max_submitting and the client's concurrency.
set -eu
BUILD=$1 POOL=$2 N=$3 ROUNDS=$4
shift 4
PUSHPOOL=$BUILD/pushpool
[ $# -gt 0 ] || set -- "$PUSHPOOL"
CONC=${PAIR_CONCURRENCY:-32}
PIN=
T=$(mktemp -d)
MOCK_RUN_SECONDS=3600 MOCK_PROVISION_SECONDS=3600 DISPATCHER_EXTRA="status_interval = 600
max_in_flight = 1000000" . "$(dirname "$0")/../../tools/mock-env.sh"
trap 'kill "$MOCK_PID" 2>/dev/null; rm -rf "$T"' EXIT INT TERM
sed -i "s/^max_submitting = .*/max_submitting = $CONC/" "$T/pushpool.conf"
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"name":"*","on":false}' \
	"$BASE/control/behaviours" >/dev/null
if [ -n "${PAIR_PIN:-}" ]; then
	taskset -a -p -c 1 "$MOCK_PID" >/dev/null
	PIN="taskset -c 0"
fi
GCP_TOKEN=$(curl -fsS -H 'Metadata-Flavor: Google' \
	"$BASE/computeMetadata/v1/instance/service-accounts/default/token" | jq -r .access_token)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
per_run() { awk -v t="$1" -v n="$N" -v hz="$(getconf CLK_TCK)" \
	'BEGIN { printf "%.3f", t * 1000 / hz / n }'; }
api_url() { if [ "$POOL" = modal ]; then echo "$MODAL"; else echo "$BASE"; fi; }

client_pass() {
	curl -fsS -X POST "$BASE/control/reset" >/dev/null
	m0=$(ticks "$MOCK_PID")
	# The client's ticks: the children's times of a shell that waited for
	# it (/proc's cutime + cstime).
	c=$(BENCH_BEARER=$GCP_TOKEN BENCH_AWS_KEY="$AKID:$AWS_SECRET" \
		BENCH_MODAL_TOKEN=ak-demo:as-demo-secret \
		sh -c '"$@" >"$0" && awk "{ print \$16 + \$17 }" /proc/$$/stat' \
		"$T/client.json" $PIN "$BUILD/bench/baseline" "$POOL" "$(api_url)" "$N" "$CONC")
	m1=$(ticks "$MOCK_PID")
	printf 'bare client  %8s runs/s  client %s ms/run  mock %s ms/run\n' \
		"$(jq .runs_per_s "$T/client.json")" "$(per_run "$c")" "$(per_run $((m1 - m0)))"
}
k=0
serve_pass() { # PUSHPOOL_BINARY
	k=$((k + 1))
	mkdir -p "$T/s$k"
	sed "s|^state_dir = .*|state_dir = $T/s$k|" "$T/pushpool.conf" >"$T/c$k.conf"
	"$1" schedule -c "$T/c$k.conf" -p "$POOL" --count "$N" >/dev/null
	curl -fsS -X POST "$BASE/control/reset" >/dev/null
	m0=$(ticks "$MOCK_PID")
	$PIN "$1" serve -c "$T/c$k.conf" 2>"$T/l$k" &
	sp=$!
	# Polled on the log (as bench.sh does), with bench.sh's deadline.
	deadline=$(($(date +%s) + 300 + N / 100))
	while [ "$(grep -c -F 'submitted as' "$T/l$k")" -lt "$N" ]; do
		kill -0 "$sp" 2>/dev/null || { tail -n 5 "$T/l$k" >&2; exit 1; }
		[ "$(date +%s)" -lt "$deadline" ] || { echo "pair: serve never submitted $N runs" >&2; exit 1; }
		sleep 0.05
	done
	s=$(ticks "$sp")
	m1=$(ticks "$MOCK_PID")
	kill -INT "$sp"
	wait "$sp"
	rate=$(sqlite3 "$T/s$k/pushpool.db" "SELECT round(count(DISTINCT run_id) * 1000.0 /
		(max(CASE WHEN state = 'SUBMITTED' THEN ts_ms END) -
		 min(CASE WHEN state = 'SUBMITTING' THEN ts_ms END)))
		FROM run_events WHERE state IN ('SUBMITTING', 'SUBMITTED')")
	printf '%-12s %8s runs/s  serve  %s ms/run  mock %s ms/run\n' \
		"$(basename "$1")" "$rate" "$(per_run "$s")" "$(per_run $((m1 - m0)))"
	rm -rf "$T/s$k"
}
client_pass >/dev/null # warms the mock for both sides
for _ in $(seq "$ROUNDS"); do
	for b in "$@"; do serve_pass "$b"; done
	client_pass
	for b in "$@"; do serve_pass "$b"; done
done
