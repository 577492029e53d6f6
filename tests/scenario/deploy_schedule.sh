#!/bin/sh
# A deployment every second on the mock (ECS), from a prefect.yaml, with
# catchup: all (the default skip would drop a slot not started within its
# second, which a restart takes; deploy_policies.sh tests that): each
# slot runs exactly once however dispatchers come and go. `serve` is
# killed -9 mid-stream, two `once` passes overlap, serve comes back, and
# the file is redeployed (the same, then with other parameters) while serve
# schedules. Afterwards: no slot has two runs, no slot between the first and
# the last run was lost, every run SUCCEEDED, and the runs made after the
# change carry the new parameters. Also: deploy is idempotent and all or
# nothing, deployment show lists the next runs, run --watch exits 0 on
# SUCCEEDED.
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
DISPATCHER_EXTRA="poll_interval = 0.5
lease_seconds = 5"
MOCK_RUN_SECONDS=0.2
. "$ROOT/tools/mock-env.sh"
C=$T/pushpool.conf
DB=$T/state/pushpool.db
q() { sqlite3 -cmd '.timeout 10000' "$DB" "$1"; }
wait_for() { # SECONDS SQL MIN: until the count query reaches MIN
	i=0
	while [ "$(q "$2" 2>/dev/null || echo 0)" -lt "$3" ]; do
		i=$((i + 1))
		[ $i -gt $(($1 * 10)) ] && fail "after $1 s still below $3: $2"
		sleep 0.1
	done
}
start_serve() {
	"$PUSHPOOL" serve -c "$C" 2>>"$T/serve.log" &
	SERVE_PID=$!
}
write_file() { # PARAMETER VALUE
	cat >"$T/prefect.yaml" <<YAML
deployments:
  - name: tick
    parameters: {n: $1}
    work_pool:
      name: ecs
    schedules:
      - interval: 1
        anchor_date: "2020-01-01T00:00:00Z"
        catchup: all
YAML
}

# All or nothing: a bad second deployment leaves the first unapplied.
cat >"$T/bad.yaml" <<'YAML'
deployments:
  - name: good
    work_pool: {name: ecs}
  - name: bad
    work_pool: {name: ecs}
    schedules:
      - cron: "61 * * * *"
YAML
rc=0
"$PUSHPOOL" deploy -c "$C" --file "$T/bad.yaml" 2>"$T/err" || rc=$?
[ "$rc" = 65 ] || fail "bad file: exit $rc, wanted 65"
grep -q 'bad.yaml:7' "$T/err" || fail "no FILE:LINE in: $(cat "$T/err")"
"$PUSHPOOL" deployment -c "$C" ls | grep -q good && fail "the good deployment of a bad file was applied"

write_file 1
"$PUSHPOOL" deploy -c "$C" --file "$T/prefect.yaml" | grep -q '1 created' || fail "deploy"
"$PUSHPOOL" deploy -c "$C" --file "$T/prefect.yaml" | grep -q '0 created, 0 updated, 1 unchanged' ||
	fail "a second deploy changed something"
"$PUSHPOOL" deployment -c "$C" show tick | grep -q 'not made yet' || fail "show: next runs"

start_serve
wait_for 20 "SELECT count(*) FROM runs WHERE state = 'SUCCEEDED'" 3
"$PUSHPOOL" deployment -c "$C" show tick | sed -n '/^next runs/,$p' | grep -q scheduled ||
	fail "show: no next runs made by serve"
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=
# Two passes at once, right after the crash: they schedule and claim together.
"$PUSHPOOL" once -c "$C" --wait --timeout 30 >"$T/once1" 2>>"$T/serve.log" &
O1=$!
"$PUSHPOOL" once -c "$C" --wait --timeout 30 >"$T/once2" 2>>"$T/serve.log" &
O2=$!
wait "$O1" || true
wait "$O2" || true
start_serve
# Redeploys while serve schedules: the same file, then new parameters.
for i in 1 2 3; do
	"$PUSHPOOL" deploy -c "$C" --file "$T/prefect.yaml" >/dev/null || fail "redeploy $i"
	sleep 0.3
done
write_file 2
"$PUSHPOOL" deploy -c "$C" --file "$T/prefect.yaml" | grep -q '1 updated' || fail "changed deploy"
changed_at=$(($(date +%s) * 1000))
wait_for 20 "SELECT count(*) FROM runs WHERE state = 'SUCCEEDED' AND parameters LIKE '%\"n\":2%'" 3
# A manual run, followed to its end.
"$PUSHPOOL" deployment -c "$C" run tick -p n=7 --watch --timeout 30 >"$T/watch" ||
	fail "run --watch: exit $?: $(cat "$T/watch")"
tail -n 1 "$T/watch" | grep -q SUCCEEDED || fail "run --watch: $(cat "$T/watch")"
# Paused: no new runs, the unstarted future ones are gone; what runs ends.
"$PUSHPOOL" deployment -c "$C" pause tick | grep -q 'paused tick' || fail "pause"
left=$(q "SELECT count(*) FROM runs WHERE state = 'SCHEDULED' AND scheduled_ms > $(($(date +%s) * 1000 + 1000))")
[ "$left" = 0 ] || fail "$left future run(s) left after pause"
wait_for 20 "SELECT count(*) = 0 FROM runs WHERE state IN ('SCHEDULED', 'SUBMITTING', 'SUBMITTED',
	'RUNNING')" 1
kill "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=

dups=$(q "SELECT count(*) FROM (SELECT scheduled_ms FROM runs WHERE slot_key IS NOT NULL
	GROUP BY deployment, scheduled_ms HAVING count(*) > 1)")
[ "$dups" = 0 ] || fail "$dups slot(s) with two runs"
# From the first to the last slot that ran, every slot ran, and succeeded.
span=$(q "SELECT (max(scheduled_ms) - min(scheduled_ms)) / 1000 + 1 FROM runs
	WHERE slot_key IS NOT NULL")
ran=$(q "SELECT count(*) FROM runs WHERE slot_key IS NOT NULL AND state = 'SUCCEEDED'")
[ "$ran" -ge 8 ] || fail "only $ran slot runs succeeded"
[ "$ran" = "$span" ] || fail "$ran slot runs succeeded over $span slots: $(q "SELECT state,
	count(*) FROM runs GROUP BY state")"
old=$(q "SELECT count(*) FROM runs WHERE slot_key IS NOT NULL AND created_ms > $changed_at
	AND parameters NOT LIKE '%\"n\":2%'")
[ "$old" = 0 ] || fail "$old run(s) made after the change with the old parameters"
q "SELECT parameters FROM runs WHERE slot_key IS NULL" | grep -q '"n":7' || fail "run -p n=7"
echo "deploy_schedule: $ran slot runs over $span slots, 0 duplicates, across kill -9, overlapping once passes and 4 redeploys"
