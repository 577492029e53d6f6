#!/bin/sh
# Run each cmocka binary; VALGRIND=1 runs them under valgrind (zero errors, zero leaks).
# Most suites spend their time waiting (mock clouds, run timeouts), not on
# the CPU, so UNIT_JOBS of them run at once (default 4; 1 runs them one
# after another), each lane taking the next suite from a shared queue.
# Results are printed in the order the suites were given, a failed suite's
# output whole before the line that names it.
JOBS=${UNIT_JOBS:-4}
case $JOBS in '' | *[!0-9]* | 0) echo "run-unit: UNIT_JOBS must be a positive number" >&2; exit 64 ;; esac
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT INT TERM

n=0
for t in "$@"; do
	n=$((n + 1))
	echo "$n $t"
done >"$OUT/queue"

# lane: run each suite of the queue this lane claims first (mkdir is
# atomic: exactly one lane creates a suite's claim directory); its output
# goes to $OUT/N.log and its exit status to $OUT/N.rc.
lane() {
	while read -r i t; do
		mkdir "$OUT/$i.claimed" 2>/dev/null || continue
		if [ -n "$VALGRIND" ]; then
			valgrind -q --child-silent-after-fork=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
				--show-leak-kinds=definite,indirect,possible "$t" >"$OUT/$i.log" 2>&1 </dev/null
		else
			"$t" >"$OUT/$i.log" 2>&1 </dev/null
		fi
		echo $? >"$OUT/$i.rc"
	done <"$OUT/queue"
}

j=0
while [ $j -lt "$JOBS" ]; do
	lane &
	j=$((j + 1))
done
wait

fail=0
while read -r i t; do
	rc=$(cat "$OUT/$i.rc")
	if [ "$rc" -ne 0 ]; then
		cat "$OUT/$i.log"
		echo "FAIL: $t (exit $rc)"
		fail=1
	else
		echo "ok   ${t#*/tests/}: $(grep -c '^\[       OK \]' "$OUT/$i.log") cases"
	fi
done <"$OUT/queue"
exit $fail
