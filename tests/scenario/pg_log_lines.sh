#!/bin/sh
# A dispatcher on PostgreSQL, whose writes go out in the background with no
# turn to commit, still gathers its INFO lines and writes them together
# before it waits or sends (dispatcher/loop.c), not with a system call a
# line: 300 ECS runs submitted, and the process made fewer than half as
# many write calls (/proc/PID/io, syscw) as its log has lines. On this
# two-core machine it was 2,005 writes for 2,000 runs before, 115 after.
. "$(dirname "$0")/../pg-lib.sh"
N=300
"$PUSHPOOL" schedule -c "$CONF" -p ecs --count "$N" --name pg-ecs >/dev/null
start_serve one
pid=$(cat "$T/one.pid")
all_logged() { [ "$(grep -c 'submitted as' "$T/one.log")" -ge "$N" ]; }
if ! until_deadline 120 0.1 all_logged; then
	echo "FAIL: $(grep -c 'submitted as' "$T/one.log") of $N submissions logged"
	tail -n 20 "$T/one.log"
	exit 1
fi
writes=$(awk '$1 == "syscw:" { print $2 }' "/proc/$pid/io")
lines=$(wc -l <"$T/one.log")
stop_serves
[ $((writes * 2)) -lt "$lines" ] || {
	echo "FAIL: $writes write calls for $lines log lines"
	exit 1
}
echo "$N runs submitted on PostgreSQL: $lines log lines in $writes write calls"
