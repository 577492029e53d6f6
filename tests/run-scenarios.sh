#!/bin/sh
# Run every tests/scenario/*.sh with PUSHPOOL pointing at the binary.
# Scenarios spend most of their time waiting on processes they started, so
# they run in SCENARIO_JOBS lanes at once (default 2; 1 runs them one after
# another). Each scenario already has to pass with another `make test`
# beside it, which is the same load. A failed scenario's log is printed
# whole, after the line that names it.
PUSHPOOL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
export PUSHPOOL
JOBS=${SCENARIO_JOBS:-2}
case $JOBS in '' | *[!0-9]* | 0) echo "run-scenarios: SCENARIO_JOBS must be a positive number" >&2; exit 64 ;; esac
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT INT TERM

# lane N: every JOBS-th scenario from the N-th, in name order.
lane() {
	n=0
	for s in $(ls tests/scenario/*.sh 2>/dev/null | sort); do
		n=$((n + 1))
		[ $(((n - 1) % JOBS)) = "$1" ] || continue
		log=$OUT/$(basename "$s").log
		start=$(date +%s)
		if sh "$s" >"$log" 2>&1; then
			echo "ok   $(basename "$s") ($(($(date +%s) - start))s)"
			rm -f "$log"
		else
			{
				echo "FAIL: $s ($(($(date +%s) - start))s)"
				cat "$log"
				echo "FAIL: $s"
			} >"$log.report"
			cat "$log.report"
			touch "$OUT/failed"
		fi
	done
}

i=0
while [ $i -lt "$JOBS" ]; do
	lane $i &
	i=$((i + 1))
done
wait
[ ! -e "$OUT/failed" ]
