#!/bin/sh
# LISTEN/NOTIFY: an idle dispatcher whose store poll comes only every 7.5 s
# (poll_interval 30 s) submits runs scheduled by another process within a
# second or two, because the insert NOTIFYs and the loop waits on the
# connection's socket.
DISPATCHER_EXTRA="poll_interval = 30"
. "$(dirname "$0")/../pg-lib.sh"
start_serve idle
end=$(($(date +%s) + 20))
until grep -q 'dispatcher idle' "$T/idle.log"; do
	[ "$(date +%s)" -lt "$end" ] || { echo "FAIL: serve did not start"; cat "$T/idle.log"; exit 1; }
	sleep 0.1
done
sleep 1 # its first claim has found nothing; the next poll is 7.5 s away
start=$(date +%s%N)
schedule_runs 1
end=$(($(date +%s) + 7))
while [ "$(psql_q "SELECT count(*) FROM runs WHERE state = 'SCHEDULED'")" != 0 ] ||
	[ "$(psql_q "SELECT count(*) FROM runs WHERE state = 'SUBMITTING'")" != 0 ]; do
	if [ "$(date +%s)" -ge "$end" ]; then
		echo "FAIL: runs still waiting after 7 s: the wake-up did not arrive"
		psql_q "SELECT state, count(*) FROM runs GROUP BY state"
		cat "$T/idle.log"
		exit 1
	fi
	sleep 0.05
done
lag=$((($(date +%s%N) - start) / 1000000))
stop_serves
echo "4 runs scheduled by another process submitted within $lag ms (store poll every 7500 ms)"
