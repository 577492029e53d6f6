#!/bin/sh
# Run every tests/scenario/*.sh with PUSHPOOL pointing at the binary.
# Scenarios spend most of their time waiting on processes they started, so
# they run in SCENARIO_JOBS lanes at once (default 2; 1 runs them one after
# another). Each scenario already has to pass with another `make test`
# beside it, which is the same load. A failed scenario's log is printed
# whole, after the line that names it.
#
# The lanes share one queue, longest scenario first (tests/scenario-times,
# seconds measured in a run of the whole set; a scenario not listed there
# counts as the longest, so a new one cannot end last): each lane claims
# the next scenario when it has finished one, so the lanes end together
# instead of one finishing minutes after the other. After adding a
# scenario or making one much faster, write the `ok` lines of a run into
# that file again: sh tests/run-scenarios.sh build/pushpool | tee log;
# sed -n 's/^ok *\([^ ]*\) (\([0-9]*\)s)$/\2 \1/p' log >tests/scenario-times
PUSHPOOL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
export PUSHPOOL
JOBS=${SCENARIO_JOBS:-2}
case $JOBS in '' | *[!0-9]* | 0) echo "run-scenarios: SCENARIO_JOBS must be a positive number" >&2; exit 64 ;; esac
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT INT TERM
TIMES=tests/scenario-times

# The queue: one scenario path a line, longest expected first.
for s in $(ls tests/scenario/*.sh 2>/dev/null | sort); do
	secs=$(awk -v n="$(basename "$s")" '$2 == n { print $1; exit }' "$TIMES" 2>/dev/null)
	echo "${secs:-999999} $s"
done | sort -k1,1nr -k2,2 | cut -d' ' -f2 >"$OUT/queue"
mkdir "$OUT/claimed"

# lane: run each scenario of the queue this lane claims first (mkdir is
# atomic: exactly one lane creates a scenario's claim directory).
lane() {
	while read -r s; do
		mkdir "$OUT/claimed/$(basename "$s")" 2>/dev/null || continue
		log=$OUT/$(basename "$s").log
		start=$(date +%s)
		if sh "$s" >"$log" 2>&1 </dev/null; then
			echo "ok   $(basename "$s") ($(($(date +%s) - start))s)"
			rm -f "$log"
		else
			{
				echo "FAIL: $s ($(($(date +%s) - start))s)"
				cat "$log"
				echo "FAIL: $s"
			} >"$log.report"
			# One report at a time, so two failing lanes do not interleave.
			until mkdir "$OUT/printing" 2>/dev/null; do sleep 0.1; done
			cat "$log.report"
			rmdir "$OUT/printing"
			touch "$OUT/failed"
		fi
	done <"$OUT/queue"
}

i=0
while [ $i -lt "$JOBS" ]; do
	lane &
	i=$((i + 1))
done
wait
[ ! -e "$OUT/failed" ]
