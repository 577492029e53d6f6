# Sourced by the tests/scenario/pg_*.sh tests and tests/bench/pg_like.sh:
# a throwaway PostgreSQL server (tests/pg-env.sh), `pushpool mock` with one
# pool per provider (tools/mock-env.sh), and $T/pushpool.conf pointing at
# both, schema migrated. Needs PUSHPOOL; sets T, PGDIR, PGURL, PSQL, BASE, CONF.
# Helpers start and stop `serve` processes and read the store and the mock.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
HERE=$(cd "$(dirname "$0")/../.." && pwd) # the scripts live in tests/*/
T=$(mktemp -d /tmp/pp-pgtest.XXXXXX)
PGDIR=
MOCK_PID=
SERVE_PIDS=
pg_lib_cleanup() {
	for p in $SERVE_PIDS; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null || true; done
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null || true
	[ -n "$PGDIR" ] && sh "$HERE/tests/pg-env.sh" stop "$PGDIR"
	[ -n "${KEEP_T:-}" ] || rm -rf "$T"
}
trap pg_lib_cleanup EXIT INT TERM

sh "$HERE/tests/pg-env.sh" check
eval "$(sh "$HERE/tests/pg-env.sh" start)"
. "$HERE/tools/mock-env.sh"
CONF=$T/pushpool.conf
printf '\n[store]\nurl = %s\n' "$PGURL" >>"$CONF"
"$PUSHPOOL" store migrate -c "$CONF" >/dev/null 2>&1

psql_q() { "$PSQL" -X -Atq "$PGURL" -c "$1"; }

# schedule_runs N: N runs in each of the four pools.
schedule_runs() {
	for pool in cloud-run ecs aci modal; do
		"$PUSHPOOL" schedule -c "$CONF" -p "$pool" --count "$1" --name "pg-$pool" >/dev/null
	done
}

# start_serve NAME: a dispatcher logging to $T/NAME.log; its pid in $T/NAME.pid.
start_serve() {
	"$PUSHPOOL" serve -c "$CONF" --owner "$1" 2>"$T/$1.log" &
	echo $! >"$T/$1.pid"
	SERVE_PIDS="$SERVE_PIDS $!"
}

# until_deadline (tests/wait-lib.sh): the waits below are it with their
# own condition and report.
. "$HERE/tests/wait-lib.sh"

# wait_serving SECONDS NAME...: until each dispatcher has opened the store
# and entered its loop (its "dispatcher NAME: store" line), or fail. A store
# outage before that ends a dispatcher (exit 75, for its supervisor to
# restart): a test that stops the server waits for this first, not for a
# time a busy machine may not give.
wait_serving() {
	secs=$1
	shift
	if ! until_deadline "$secs" 0.05 serving "$@"; then
		for name in "$@"; do
			serving "$name" && continue
			echo "FAIL: $name never started serving"
			tail -n 20 "$T/$name.log"
			break
		done
		dump_serves
		return 1
	fi
}
serving() {
	for serving_name in "$@"; do
		grep -q "dispatcher $serving_name: store" "$T/$serving_name.log" 2>/dev/null ||
			return 1
	done
}

# hold_claimer WHEN: a trigger fired WHEN ("BEFORE INSERT ON owner_leases
# FOR EACH ROW", "BEFORE UPDATE ON runs FOR EACH STATEMENT") holds the
# claimer's session, the one session of a dispatcher's store that does not
# LISTEN, while a gate is shut: a claim is held in the server, not raced,
# and not by a lock, which lock_timeout would end. claim_held: one claim
# waits in it; open_claimer: the gate opens.
hold_claimer() {
	"$PSQL" -X -q -v ON_ERROR_STOP=1 "$PGURL" >/dev/null <<SQL
CREATE TABLE test_gate (open boolean NOT NULL);
INSERT INTO test_gate VALUES (false);
CREATE FUNCTION test_hold_claimer() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_listening_channels()) THEN
		WHILE NOT (SELECT open FROM test_gate) LOOP
			PERFORM pg_sleep(0.01);
		END LOOP;
	END IF;
	RETURN NEW;
END \$\$;
CREATE TRIGGER test_hold $1 EXECUTE FUNCTION test_hold_claimer();
SQL
}
claim_held() {
	[ "$(psql_q "SELECT count(*) FROM pg_stat_activity WHERE application_name =
		'pushpool' AND wait_event = 'PgSleep'")" = 1 ]
}
open_claimer() { psql_q "UPDATE test_gate SET open = true" >/dev/null; }

stop_serves() {
	for p in $SERVE_PIDS; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null || true; done
	for p in $SERVE_PIDS; do wait "$p" 2>/dev/null || true; done
	SERVE_PIDS=
}

# dump_serves: whether each dispatcher still runs, and if it does where its
# threads are, so a wait that timed out tells a hung dispatcher from a dead
# one and shows where it hangs.
dump_serves() {
	for f in "$T"/*.pid; do
		[ -f "$f" ] || continue
		name=$(basename "$f" .pid)
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then
			echo "== $name (pid $pid) is running; its threads:"
			if command -v gdb >/dev/null; then
				timeout 60 gdb -batch -nx -p "$pid" -ex "thread apply all bt" 2>/dev/null |
					grep -E '^(Thread|#)' || true
			fi
		else
			status=0
			wait "$pid" 2>/dev/null || status=$?
			echo "== $name (pid $pid) has exited, status $status"
		fi
	done
}

TERMINAL_SQL="('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD')"
unfinished() {
	psql_q "SELECT count(*) FROM runs WHERE state NOT IN $TERMINAL_SQL"
}

# wait_for SECONDS MIN SQL: until the count query SQL prints MIN or more.
# dropped NAME: runs dispatcher NAME logged leaving to their new owner.
dropped() {
	sed -n 's/.*WARN run \([0-9a-f-]*\):.*leaving it to its new owner.*/\1/p' "$T/$1.log" |
		sort -u | wc -l | tr -d ' '
}

# wait_dropped SECONDS NAME N: until dispatcher NAME has let go of N runs
# (a resumed stale dispatcher holds nothing after that, so it can send
# nothing more: what the mock counted by then is all it will ever send).
wait_dropped() {
	if ! until_deadline "$1" 0.05 dropped_at_least "$2" "$3"; then
		echo "FAIL: after $1 s $2 has let go of $(dropped "$2") of $3 runs"
		tail -n 20 "$T/$2.log"
		dump_serves
		return 1
	fi
}
dropped_at_least() { [ "$(dropped "$1")" -ge "$2" ]; }

wait_for() {
	if ! until_deadline "$1" 0.05 count_at_least "$2" "$3"; then
		echo "FAIL: after $1 s still below $2: $3"
		psql_q "SELECT state, lease_owner, count(*) FROM runs GROUP BY 1, 2"
		for f in "$T"/*.log; do echo "== $f"; tail -n 15 "$f"; done
		dump_serves
		return 1
	fi
}
count_at_least() { [ "$(psql_q "$2" 2>/dev/null || echo -1)" -ge "$1" ]; }

# wait_all_terminal SECONDS: until every run has ended, or fail.
wait_all_terminal() {
	if ! until_deadline "$1" 0.5 all_terminal; then
		echo "FAIL: $(unfinished) run(s) unfinished after $1 s"
		psql_q "SELECT state, count(*) FROM runs GROUP BY state"
		# Who holds the unfinished ones, and what each of three went
		# through, in the store and in the dispatchers' logs.
		psql_q "SELECT state, pool, COALESCE(lease_owner, '-'), attempt, count(*) FROM runs
			WHERE state NOT IN $TERMINAL_SQL GROUP BY 1, 2, 3, 4"
		for id in $(psql_q "SELECT id FROM runs WHERE state NOT IN $TERMINAL_SQL
			ORDER BY id LIMIT 3"); do
			echo "== run $id"
			psql_q "SELECT seq, state, message FROM run_events WHERE run_id = '$id'
				ORDER BY seq"
			grep -h "$id" "$T"/d*.log | cut -c1-300
		done
		for f in "$T"/*.log; do echo "== $f"; tail -n 15 "$f"; done
		dump_serves
		return 1
	fi
}
all_terminal() { [ "$(unfinished 2>/dev/null || echo x)" = 0 ]; }

mock_stats() { curl -fsS "$BASE/control/stats"; }

# check_one_object_per_run RUNS_PER_POOL STATS_FILE: every run made exactly
# one remote object and none is left behind.
check_one_object_per_run() {
	n=$1
	s=$2
	for map in ecs.clientToken aci.creates modal_sandbox_creates cloudrun.executions; do
		len=$(jq -r ".keyed[\"$map\"] // {} | length" "$s")
		ones=$(jq -r "[.keyed[\"$map\"] // {} | to_entries[] | select(.value == 1)] | length" "$s")
		if [ "$len" != "$n" ] || [ "$ones" != "$n" ]; then
			echo "FAIL: $map: $len objects, $ones created once; want $n and $n"
			return 1
		fi
	done
	for c in RunTaskStarted cloudrun.creates; do
		v=$(jq -r ".counters[\"$c\"] // 0" "$s")
		[ "$v" = "$n" ] || { echo "FAIL: $c = $v, want $n"; return 1; }
	done
	for k in live_jobs live_executions live_tasks live_container_groups live_modal_sandboxes; do
		v=$(jq -r ".live.$k" "$s")
		[ "$v" = 0 ] || { echo "FAIL: $k left: $v"; return 1; }
	done
}
