#!/bin/sh
# LISTEN/NOTIFY: an idle dispatcher whose store poll comes only every 15
# minutes (poll_interval 3600 s) submits runs scheduled by another process
# at once, because the insert NOTIFYs and the loop waits on the
# connection's socket.
#
# Round 1 settles the start: its runs are claimed by the first claim or by
# a wake-up, whichever comes first. Round 2 is scheduled just after the
# claim that took round 1, so the next timed claim is about 15 minutes
# away: only the wake-up can submit it inside the 5 minutes allowed, which
# no load on the machine comes near (it takes milliseconds).
DISPATCHER_EXTRA="poll_interval = 3600"
. "$(dirname "$0")/../pg-lib.sh"
# Every run has left SCHEDULED and SUBMITTING.
submitted() {
	[ "$(psql_q "SELECT count(*) FROM runs WHERE state IN ('SCHEDULED', 'SUBMITTING')")" = 0 ]
}
# wait_submitted SECONDS: until submitted, or fail.
wait_submitted() {
	if ! until_deadline "$1" 0.05 submitted; then
		echo "FAIL: runs still waiting after $1 s: the wake-up did not arrive"
		psql_q "SELECT state, count(*) FROM runs GROUP BY state"
		cat "$T/idle.log"
		exit 1
	fi
}
start_serve idle
schedule_runs 1
wait_submitted 60
start=$(date +%s%N)
schedule_runs 1
wait_submitted 300
lag=$((($(date +%s%N) - start) / 1000000))
stop_serves
echo "4 runs scheduled by another process submitted within $lag ms (store poll every 900000 ms)"
