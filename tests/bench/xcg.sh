#!/bin/sh
# temporary: callgrind of serve over N runs of POOL for each binary given
set -eu
BUILD=$1 POOL=$2 N=$3
shift 3
PUSHPOOL=$BUILD/pushpool
BASELINE=$BUILD/bench/baseline
CONC=32
T=$(mktemp -d)
MOCK_PID=
SERVE_PID=
trap '[ -z "$SERVE_PID" ] || kill "$SERVE_PID"; kill "$MOCK_PID" 2>/dev/null; rm -rf "$T"' EXIT INT TERM
die() { echo "xcg: $*" >&2; exit 1; }
. "$(dirname "$0")/lib.sh"
for bin in "$@"; do
	name=$(basename "$bin")
	mock_reset
	cf=$(conf "$name")
	schedule_n "$cf" "$POOL" "$N"
	SERVE_BIN=$bin serve_until_submitted "$name" "$cf" "$N" valgrind --tool=callgrind --callgrind-out-file=/tmp/xb/cg.$name.$POOL
	stop_serve
	printf '%s %s ' "$name" "$POOL"
	callgrind_annotate /tmp/xb/cg.$name.$POOL 2>/dev/null | grep -m1 "PROGRAM TOTALS"
done
