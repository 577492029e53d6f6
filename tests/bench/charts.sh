#!/bin/sh
# The cost curve of a bench.json (tests/bench/bench.sh) as PNG charts, by
# gnuplot: OUTDIR/bench-in-flight.png (throughput and peak RSS per run
# against runs in flight) and OUTDIR/bench-claim.png (claim time against
# finished runs stored). A bench without curve points draws nothing.
set -eu
JSON=$1
OUT=${2:-build}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
jq -r '.figures[] | select(.figure == "curve_in_flight")
	| "\(.in_flight) \(.runs_per_s) \(.kib_per_run)"' "$JSON" >"$D/flight"
jq -r '.figures[] | select(.figure == "curve_claim")
	| "\(.stored) \(.p50_us) \(.p99_us)"' "$JSON" >"$D/claim"
jq -r '.figures[] | select(.figure == "curve_claim_limited")
	| "\(.stored) \(.p50_us)"' "$JSON" >"$D/limited"
when=$(jq -r .date "$JSON")
if [ -s "$D/flight" ]; then
	gnuplot <<GP
set terminal png size 800,480
set output "$OUT/bench-in-flight.png"
set title "pushpool serve, ECS runs in flight (make bench, $when)"
set logscale x
set xlabel "runs in flight"
set ylabel "runs/s (first claim to last SUBMITTED)"
set y2label "peak RSS per run in flight (KiB)"
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
set y2tics
set key top left
set grid
plot "$D/flight" using 1:2 with linespoints title "throughput (runs/s)", \
     "$D/flight" using 1:3 axes x1y2 with linespoints title "peak RSS per run (KiB)", \
     3 axes x1y2 with lines dashtype 2 title "goal: 3 KiB per run"
GP
	echo "charts: wrote $OUT/bench-in-flight.png" >&2
fi
if [ -s "$D/claim" ]; then
	gnuplot <<GP
set terminal png size 800,480
set output "$OUT/bench-claim.png"
set title "Claim of 10 due runs, SQLite store (make bench, $when)"
set logscale x
set xlabel "finished runs stored"
set ylabel "time per claim (µs)"
set yrange [0:*]
set key top left
set grid
plot "$D/claim" using 1:2 with linespoints title "p50", \
     "$D/claim" using 1:3 with linespoints title "p99"$(
	[ ! -s "$D/limited" ] ||
		printf ', "%s" using 1:2 with linespoints title "p50, pool with a limit"' "$D/limited")
GP
	echo "charts: wrote $OUT/bench-claim.png" >&2
fi
