#!/bin/sh
# Diagnosis behind docs/performance.md's steps 38 and 39, not part of
# `make bench`: alternated passes of `serve` (one per binary given) and of
# the bare client against one warm mock (bench.sh's, from lib.sh), with
# each side's CPU a run and the mock's from /proc/PID/stat (utime + stime).
#   sh tests/bench/pair.sh BUILD POOL RUNS ROUNDS [PUSHPOOL_BINARY...]
# PAIR_PIN=1 pins the mock to CPU 1 and both clients to CPU 0 (taskset);
# PAIR_CONCURRENCY [32] is max_submitting and the client's concurrency.
# PAIR_WORK (docs/performance.md, step 41): after each round's client pass,
# one more for each item, the client spending that many microseconds of CPU
# on each run (baseline's --work-us), "US:thread" on a second thread
# (--work-thread); e.g. PAIR_WORK="20 40 65 65:thread".
set -eu
BUILD=$1 POOL=$2 N=$3 ROUNDS=$4
shift 4
PUSHPOOL=$BUILD/pushpool
BASELINE=$BUILD/bench/baseline
[ $# -gt 0 ] || set -- "$PUSHPOOL"
CONC=${PAIR_CONCURRENCY:-32}
T=$(mktemp -d)
MOCK_PID=
SERVE_PID=
trap '[ -z "$SERVE_PID" ] || kill "$SERVE_PID"; kill "$MOCK_PID" 2>/dev/null; rm -rf "$T"' \
	EXIT INT TERM
die() {
	echo "pair: $*" >&2
	exit 1
}
. "$(dirname "$0")/lib.sh"
PIN=
if [ -n "${PAIR_PIN:-}" ]; then
	taskset -a -p -c 1 "$MOCK_PID" >/dev/null
	PIN="taskset -c 0"
fi
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
per_run() { awk -v t="$1" -v n="$N" -v hz="$(getconf CLK_TCK)" \
	'BEGIN { printf "%.3f", t * 1000 / hz / n }'; }

client_pass() { # [WORK: US or US:thread]
	label="bare client"
	opts=
	if [ -n "${1:-}" ]; then
		label="+${1%:thread} us${1#"${1%:thread}"}"
		opts="--work-us=${1%:thread}"
		[ "$1" = "${1%:thread}" ] || opts="$opts --work-thread"
	fi
	mock_reset
	m0=$(ticks "$MOCK_PID")
	BASELINE_WRAP=$PIN baseline_run "$POOL" "$N" "$CONC" "$opts" >"$T/client.json"
	m1=$(ticks "$MOCK_PID")
	# The client's CPU as it reports it (getrusage, microseconds).
	printf '%-12s %8s runs/s (own clock %s)  client %s ms/run  mock %s ms/run\n' "$label" \
		"$(mock_rate "$N")" "$(jq .runs_per_s "$T/client.json")" \
		"$(jq --argjson n "$N" '.cpu_s * 1000 / $n * 10000 | round / 10000' "$T/client.json")" \
		"$(per_run $((m1 - m0)))"
}
k=0
serve_pass() { # PUSHPOOL_BINARY
	k=$((k + 1))
	cf=$(conf "s$k")
	"$1" schedule -c "$cf" -p "$POOL" --count "$N" >/dev/null
	mock_reset
	m0=$(ticks "$MOCK_PID")
	SERVE_BIN=$1
	serve_until_submitted "s$k" "$cf" "$N" $PIN
	# Its CPU from the scheduler, in nanoseconds: the tick counts are 10 ms
	# steps, 2-3 % of a pass.
	s=$(awk '{ print $1 }' "/proc/$SERVE_PID/schedstat")
	m1=$(ticks "$MOCK_PID")
	stop_serve
	printf '%-12s %8s runs/s (store %s)  serve  %s ms/run  mock %s ms/run\n' \
		"$(basename "$1")" "$(mock_rate "$N")" "$(store_rate "s$k")" \
		"$(awk -v ns="$s" -v n="$N" 'BEGIN { printf "%.4f", ns / 1e6 / n }')" \
		"$(per_run $((m1 - m0)))"
	rm -rf "$T/s$k"
}
client_pass >/dev/null # warms the mock for both sides
for _ in $(seq "$ROUNDS"); do
	for b in "$@"; do serve_pass "$b"; done
	client_pass
	for w in ${PAIR_WORK:-}; do client_pass "$w"; done
	for b in "$@"; do serve_pass "$b"; done
done
