#!/bin/sh
# Catch-up and overlap policies of deployments' schedules on the mock (ECS).
#  0. A [deployment] section deploys like a prefect.yaml entry.
#  1. Catch-up: three per-second deployments see no dispatcher for 10 s (their
#     cursors moved back in the store), then one `once` pass. Missed slots (the next one is due too) are dropped
#     (skip), reduced to the newest (latest), or kept within a 3 s window
#     (all); the current slot and the 100 ahead are made in every case, so
#     the runs made are exactly 101, 102 and 104, however long the pass takes.
#  2. Overlap, with jobs that run 2.5 s and a slot every second: skip cancels
#     the slots that come due while a run is unfinished, buffer_one keeps one
#     waiting and cancels the rest, cancel_other asks the running one to stop;
#     under skip and buffer_one no two runs of the deployment were ever under
#     way at once (from the runs' event history), while allow overlaps.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
T=$(mktemp -d)
MOCK_PID=
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill -9 "$SERVE_PID" 2>/dev/null
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*"
	[ -f "$T/serve.log" ] && tail -n 20 "$T/serve.log"
	exit 1
}
DISPATCHER_EXTRA="poll_interval = 0.5"
MOCK_RUN_SECONDS=2.5
. "$ROOT/tools/mock-env.sh"
C=$T/pushpool.conf
DB=$T/state/pushpool.db
q() { sqlite3 -cmd '.timeout 10000' "$DB" "$1"; }
wait_for() { # SECONDS SQL MIN
	i=0
	while [ "$(q "$2" 2>/dev/null || echo 0)" -lt "$3" ]; do
		i=$((i + 1))
		[ $i -gt $(($1 * 10)) ] && fail "after $1 s still below $3: $2"
		sleep 0.1
	done
}
# deployment NAME SCHEDULE-EXTRA...: one per-second deployment of pool ecs.
deployment() {
	name=$1
	shift
	printf '  - name: %s\n    work_pool: {name: ecs}\n    schedules:\n' "$name"
	printf '      - interval: 1\n        anchor_date: "2020-01-01T00:00:00Z"\n'
	for extra in "$@"; do printf '        %s\n' "$extra"; done
}

# ---- 0. [deployment] sections: the same without a prefect.yaml ----
cat >>"$C" <<'CONF'

[deployment "from-conf"]
pool = ecs
cron = 0 7 * * *
timezone = Europe/Berlin
paused = true
CONF
"$PUSHPOOL" deploy -c "$C" | grep -q '1 created' || fail "deploy from [deployment] sections"
rc=0
"$PUSHPOOL" deploy -c "$C" --name nope 2>/dev/null || rc=$?
[ "$rc" = 78 ] || fail "deploy --name of no section: exit $rc, wanted 78"
"$PUSHPOOL" deployment -c "$C" ls | grep -q '^from-conf .* yes ' || fail "from-conf not listed paused"

# ---- 1. catch-up ----
{
	echo "deployments:"
	deployment cu-skip "catchup: skip"
	deployment cu-latest "catchup: latest"
	deployment cu-all "catchup: all" "catchup_window: 3"
} >"$T/catchup.yaml"
"$PUSHPOOL" deploy -c "$C" --file "$T/catchup.yaml" >/dev/null || fail "deploy catch-up"
# Downtime without waiting for it: every schedule's cursor (the last slot
# handled, set to the deploy time) goes 10 s back, as if no dispatcher had
# run for 10 s. More than the 3 s window, so the counts below do not depend
# on how long this machine takes to reach the pass.
q "UPDATE deployment_schedules SET cursor_s = cursor_s - 10 WHERE deployment LIKE 'cu-%'"
"$PUSHPOOL" once -c "$C" >/dev/null 2>>"$T/serve.log" || true
for want in cu-skip:101 cu-latest:102 cu-all:104; do
	name=${want%%:*}
	got=$(q "SELECT count(*) FROM runs WHERE deployment = '$name' AND slot_key IS NOT NULL")
	[ "$got" = "${want#*:}" ] || fail "$name: $got runs made, wanted ${want#*:}"
done
"$PUSHPOOL" deployment -c "$C" delete cu-skip >/dev/null
"$PUSHPOOL" deployment -c "$C" delete cu-latest >/dev/null
"$PUSHPOOL" deployment -c "$C" delete cu-all >/dev/null
q "DELETE FROM run_events; DELETE FROM runs"

# ---- 2. overlap ----
{
	echo "deployments:"
	deployment ov-skip "overlap: skip" "catchup: all"
	deployment ov-buffer "overlap: buffer_one" "catchup: all"
	deployment ov-cancel "overlap: cancel_other" "catchup: all"
	deployment ov-allow "catchup: all"
} >"$T/overlap.yaml"
"$PUSHPOOL" deploy -c "$C" --file "$T/overlap.yaml" >/dev/null || fail "deploy overlap"
"$PUSHPOOL" serve -c "$C" 2>>"$T/serve.log" &
SERVE_PID=$!
wait_for 30 "SELECT count(*) FROM runs WHERE deployment = 'ov-skip' AND state = 'SUCCEEDED'" 2
wait_for 30 "SELECT count(*) FROM runs WHERE deployment = 'ov-buffer' AND state = 'SUCCEEDED'" 2
wait_for 30 "SELECT count(*) FROM run_events e JOIN runs r ON r.id = e.run_id
	WHERE r.deployment = 'ov-cancel' AND r.state = 'CANCELLED'
	AND e.message LIKE '%overlap cancel_other%'" 1
for d in ov-skip ov-buffer ov-cancel ov-allow; do
	"$PUSHPOOL" deployment -c "$C" pause "$d" >/dev/null
done
wait_for 30 "SELECT count(*) = 0 FROM runs WHERE state IN ('SUBMITTING', 'SUBMITTED', 'RUNNING',
	'CANCELLING')" 1
kill "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=

# Most runs of one deployment under way at once: each run is under way from
# its SUBMITTING event to its last event.
overlap() {
	q "WITH span AS (SELECT r.id, min(e.ts_ms) AS s, max(e.ts_ms) AS e FROM runs r
		JOIN run_events e ON e.run_id = r.id WHERE r.deployment = '$1'
		AND r.state <> 'SCHEDULED' AND e.state <> 'SCHEDULED' GROUP BY r.id)
	   SELECT COALESCE(max(n), 0) FROM (SELECT (SELECT count(*) FROM span b
		WHERE b.s <= a.s AND a.s < b.e) AS n FROM span a)"
}
skipped=$(q "SELECT count(*) FROM runs WHERE deployment = 'ov-skip' AND state = 'CANCELLED'
	AND last_error LIKE '%overlap skip%'")
[ "$skipped" -ge 2 ] || fail "ov-skip: $skipped slot(s) skipped"
[ "$(overlap ov-skip)" = 1 ] || fail "ov-skip: $(overlap ov-skip) runs at once"
buffered=$(q "SELECT count(*) FROM runs WHERE deployment = 'ov-buffer' AND state = 'CANCELLED'
	AND last_error LIKE '%buffer_one%'")
[ "$buffered" -ge 1 ] || fail "ov-buffer: nothing dropped"
[ "$(overlap ov-buffer)" = 1 ] || fail "ov-buffer: $(overlap ov-buffer) runs at once"
asked=$(q "SELECT count(*) FROM run_events e JOIN runs r ON r.id = e.run_id
	WHERE r.deployment = 'ov-cancel' AND r.state = 'CANCELLED'
	AND e.message LIKE '%overlap cancel_other%'")
[ "$asked" -ge 1 ] || fail "ov-cancel: no run was stopped for a newer one"
[ "$(overlap ov-allow)" -ge 2 ] || fail "ov-allow: runs never overlapped ($(overlap ov-allow))"
echo "deploy_policies: catch-up 101/102/104 runs made (skip/latest/all); overlap skip $skipped skipped, buffer_one $buffered dropped, cancel_other $asked stop request(s), allow $(overlap ov-allow) at once"
