#!/bin/sh
# ECS status polls in batches: `serve` asks about many runs' tasks in one
# DescribeTasks (ECS takes up to 100 a call) instead of one call per run.
# 250 runs against `pushpool mock`: 150 that succeed, 50 whose container
# exits 1 and 50 whose task never starts. While 200 of them run, the mock
# counts the tasks DescribeTasks was asked about and the calls: at least 20
# tasks a call on average. Then every run must end with its own outcome
# (one run given another's answer from a shared DescribeTasks would show),
# and no DescribeTasks may have been refused (more than 100 tasks, say).
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
MOCK_PID=
SERVE_PID=
cleanup() {
	# A failure (a check, or set -e) shows what the dispatcher said last;
	# whatever the outcome, both processes stop and the files go.
	[ $? -ne 0 ] && [ -f "$T/serve.log" ] && tail -n 20 "$T/serve.log" >&2
	for p in $SERVE_PID $MOCK_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# The tasks run for an hour: they are all still running while the polls
# are counted, however slow the machine, and end when the test moves the
# mock's clock. The clock is not held: the mock's ECS eventual consistency
# (a new task answered MISSING for a while) runs on it too. The sweeper
# describes the cluster's tasks too (a hundred a call), which would count
# here as polls: it is off.
MOCK_RUN_SECONDS=3600 DISPATCHER_EXTRA="sweep_interval = 0" . "$(dirname "$0")/../../tools/mock-env.sh"

# One counter from /control/stats, by name (0 when absent): plain ones such
# as ecs.described_tasks, or the requests of an action, ecs:DescribeTasks
# (at least a digit: request_times, later, has the same key before a "[").
# From a snapshot (snap): two counters read together come from one moment.
snap() {
	curl -fsS "$BASE/control/stats" | tr -d ' \n' >"$T/stats" || fail "mock stats unreadable"
}
stat() {
	grep -o "\"$1\":[0-9][0-9]*" "$T/stats" | head -n 1 | sed 's/.*://' | grep . || echo 0
}

pp() {
	"$PUSHPOOL" -c "$T/pushpool.conf" "$@"
}
# An ECS run is polled at its job's pace, task_watch_poll_interval (5 s in
# the built-in template, as Prefect's ECS worker): 0.5 s here.
PACE='task_watch_poll_interval=0.5'

# Every run of the pool, one line each: ID POOL STATE DATE TIME ERROR...
runs() {
	pp runs ls --pool ecs >"$T/ls" || fail "runs ls: $(cat "$T/ls")"
}
# How many runs of the ls are in one of the states given (a regex).
count() {
	awk -v s="^($1)\$" 'NR > 1 && $3 ~ s { n++ } END { print n + 0 }' "$T/ls"
}

pp schedule -p ecs --count 150 -v "$PACE" >"$T/ok" || fail "schedule: $(cat "$T/ok")"
pp schedule -p ecs --count 50 -v "$PACE" -v 'env={"PUSHPOOL_MOCK_FAIL": "1"}' >"$T/bad" ||
	fail "schedule: $(cat "$T/bad")"
pp schedule -p ecs --count 50 -v "$PACE" -v 'env={"PUSHPOOL_MOCK_CRASH": "1"}' >"$T/crash" ||
	fail "schedule: $(cat "$T/crash")"
[ "$(cat "$T/ok" "$T/bad" "$T/crash" | sort -u | grep -c .)" -eq 250 ] ||
	fail "schedule did not print 250 distinct ids"

# Not through pp: $! must be serve itself, not a subshell, to stop it.
"$PUSHPOOL" -c "$T/pushpool.conf" serve >"$T/serve.log" 2>&1 &
SERVE_PID=$!

# Until CHECK (a command) succeeds, for at most 120 s (until_deadline);
# WHAT says what did not happen. serve must stay up meanwhile.
. "$(dirname "$0")/../wait-lib.sh"
serving_and() {
	kill -0 "$SERVE_PID" 2>/dev/null || fail "serve exited"
	"$@"
}
await() { # WHAT CHECK...
	what=$1
	shift
	until_deadline 120 0.2 serving_and "$@" || fail "$what after 120 s"
}
# At least N runs of the ls in one of STATES (a regex), listed afresh.
at_least() { runs && [ "$(count "$2")" -ge "$1" ]; }
# At least N more tasks described than at the snapshot before.
described() { snap && [ $(($(stat ecs.described_tasks) - tasks0)) -ge "$1" ]; }

# Every run that starts is RUNNING (the crashing ones end on their own).
await "not 200 runs RUNNING" at_least 200 RUNNING

# Four status intervals' worth of polls of the 200 running runs, counted,
# not slept: the tasks asked about over the calls made.
snap
calls0=$(stat ecs:DescribeTasks)
tasks0=$(stat ecs.described_tasks)
await "not 800 tasks described" described 800
calls=$(($(stat ecs:DescribeTasks) - calls0))
tasks=$(($(stat ecs.described_tasks) - tasks0))
echo "status polls: $tasks tasks described in $calls DescribeTasks calls" \
	"($((tasks / (calls > 0 ? calls : 1))) a call)"
[ "$tasks" -ge $((20 * calls)) ] ||
	fail "$tasks tasks in $calls DescribeTasks calls: fewer than 20 tasks a call," \
		"the runs' status polls are not batched"

# An hour later every task has stopped: the running ones exit (0 or 1).
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"advance_ms": 3700000}' \
	"$BASE/control/clock" >/dev/null || fail "the mock's clock did not move"
await "runs not finished" at_least 250 'SUCCEEDED|FAILED|CRASHED|CANCELLED|DEAD|QUARANTINED'

# Each run its own outcome, from the one listing of all 250: a run given
# another's task in a shared answer would end as that one's group does.
# check IDS PATTERN WHAT: every run of the file IDS (one id a line) is
# listed with PATTERN (state, then error).
check() {
	while read -r id; do
		line=$(grep "^$id " "$T/ls") || fail "run $id not listed"
		echo "$line" | grep -q "$2" || fail "$3 run: $line"
	done <"$T/$1"
}
check ok ' SUCCEEDED ' plain
check bad ' FAILED .*exit code 1' failing
check crash ' CRASHED .*TaskFailedToStart' crashing

# A DescribeTasks the mock refused (over 100 tasks, say) shows here.
! grep -q 'status check failed' "$T/serve.log" ||
	fail "status checks failed: $(grep 'status check failed' "$T/serve.log" | head -n 3)"
echo "ok: 250 runs, each its own outcome; $tasks tasks in $calls DescribeTasks calls"
