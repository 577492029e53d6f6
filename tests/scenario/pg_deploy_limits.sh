#!/bin/sh
# Three `serve` processes on one PostgreSQL store: store-wide limits hold.
# Pool ecs has a limit of 4; its queue q2 (priority 1) a limit of 2; three
# deployments give it 6 runs each: A in q2, B with a concurrency limit of 2,
# C unlimited. From the runs' event history (server clock), the most runs
# under way at once never exceed the pool's, the queue's or the
# deployment's limit, though three dispatchers claim together; runs held
# back say so in `runs ls`. A per-second deployment on pool modal, scheduled
# by all three dispatchers at once and redeployed with new parameters four
# times meanwhile, makes each slot's run once.
DISPATCHER_EXTRA="poll_interval = 0.5"
MOCK_RUN_SECONDS=1
. "$(dirname "$0")/../pg-lib.sh"
fail() {
	echo "FAIL: $*"
	psql_q "SELECT deployment, state, count(*) FROM runs GROUP BY 1, 2"
	for f in "$T"/*.log; do echo "== $f"; tail -n 10 "$f"; done
	exit 1
}
"$PUSHPOOL" queue -c "$CONF" set ecs q2 --priority 1 --limit 2 >/dev/null || fail "queue set"
"$PUSHPOOL" pool -c "$CONF" set ecs --limit 4 >/dev/null || fail "pool set"
cat >"$T/prefect.yaml" <<'YAML'
deployments:
  - name: A
    work_pool: {name: ecs, work_queue_name: q2}
  - name: B
    concurrency_limit: 2
    work_pool: {name: ecs}
  - name: C
    work_pool: {name: ecs}
  - name: tick
    work_pool: {name: modal}
    schedules:
      - interval: 1
        anchor_date: "2020-01-01T00:00:00Z"
        catchup: all
YAML
"$PUSHPOOL" deploy -c "$CONF" --file "$T/prefect.yaml" >/dev/null || fail "deploy"
for d in A B C; do
	for i in 1 2 3 4 5 6; do
		"$PUSHPOOL" deployment -c "$CONF" run "$d" -p "i=$i" >/dev/null || fail "run $d"
	done
done
start_serve d1
start_serve d2
start_serve d3
# Held-back runs say why.
end=$(($(date +%s) + 30))
until "$PUSHPOOL" runs -c "$CONF" ls --pool ecs | grep -q 'waiting: .*limit'; do
	[ "$(date +%s)" -lt "$end" ] || fail "runs ls never showed a run waiting for a limit"
	sleep 0.1
done
# Redeploys while the three schedule: tick's parameters change each time,
# so its future runs are removed and made again under the same slot keys.
for i in 1 2 3 4; do
	sed "s/^  - name: tick\$/  - name: tick\n    parameters: {round: $i}/" "$T/prefect.yaml" >"$T/re.yaml"
	"$PUSHPOOL" deploy -c "$CONF" --file "$T/re.yaml" | grep -q '1 updated' || fail "redeploy $i"
	sleep 0.5
done
wait_for 60 18 "SELECT count(*) FROM runs WHERE pool = 'ecs' AND state = 'SUCCEEDED'" || exit 1
wait_for 30 8 "SELECT count(*) FROM runs WHERE deployment = 'tick' AND state = 'SUCCEEDED'" || exit 1
"$PUSHPOOL" deployment -c "$CONF" pause tick >/dev/null || fail "pause"
wait_all_terminal 30 || exit 1
stop_serves

# most WHERE: the most runs matching WHERE under way at once, each from its
# SUBMITTING event to its last event.
most() {
	psql_q "WITH span AS (SELECT r.id, min(e.ts_ms) AS s, max(e.ts_ms) AS e FROM runs r
		JOIN run_events e ON e.run_id = r.id WHERE $1 AND e.state <> 'SCHEDULED'
		GROUP BY r.id)
	   SELECT COALESCE(max(n), 0) FROM (SELECT (SELECT count(*) FROM span b
		WHERE b.s <= a.s AND a.s < b.e) AS n FROM span a) x"
}
pool=$(most "r.pool = 'ecs'")
queue=$(most "r.pool = 'ecs' AND r.queue = 'q2'")
dep=$(most "r.deployment = 'B'")
[ "$pool" -le 4 ] || fail "pool ecs: $pool runs at once, limit 4"
[ "$queue" -le 2 ] || fail "queue q2: $queue runs at once, limit 2"
[ "$dep" -le 2 ] || fail "deployment B: $dep runs at once, limit 2"
[ "$pool" -ge 3 ] || fail "pool ecs: at most $pool at once: the limit was never reached"
bad=$(psql_q "SELECT count(*) FROM runs WHERE pool = 'ecs' AND state <> 'SUCCEEDED'")
[ "$bad" = 0 ] || fail "$bad ecs run(s) not SUCCEEDED"
dups=$(psql_q "SELECT count(*) FROM (SELECT scheduled_ms FROM runs WHERE deployment = 'tick'
	GROUP BY scheduled_ms HAVING count(*) > 1) x")
[ "$dups" = 0 ] || fail "$dups slot(s) of tick with two runs"
by=$(for d in d1 d2 d3; do printf '%s=%s ' $d "$(grep -c 'submitted as' "$T/$d.log" || true)"; done)
rounds=$(psql_q "SELECT count(DISTINCT parameters) FROM runs WHERE deployment = 'tick'
	AND state = 'SUCCEEDED'")
[ "$rounds" -ge 2 ] || fail "tick: runs of $rounds parameter set(s) ran; the redeploys made none"
echo "pg_deploy_limits: at most $pool/4 (pool), $queue/2 (queue), $dep/2 (deployment) at once across 3 dispatchers ($by); tick: 0 duplicate slots across 4 redeploys"
