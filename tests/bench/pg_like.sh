#!/bin/sh
# The PostgreSQL store measured like for like (issue 23), in the shape of
# tests/bench/bench.sh's throughput figures:
#  - 1 dispatcher on PostgreSQL against 1 on SQLite, the same runs of one pool
#    type, to SUBMITTED (status_interval 600 s: nothing but submissions) and
#    to SUCCEEDED (status_interval 0.2 s, the mock's jobs provision in 0.1 s
#    and run 0.3 s), at +0 ms;
#  - 3 dispatchers on PostgreSQL against 1, one pool type, to SUBMITTED,
#    with the mock's latency_ms at +20 ms on every API.
#  - an idle dispatcher holding 10,000 runs in flight against one with an
#    empty store: CPU of it and its server sessions, and WAL written;
#  - 1 dispatcher on a store holding 200,000 finished runs against one on
#    an empty store, 2,000 ECS runs to SUBMITTED at +0 ms.
# Every figure is a ratio against its baseline measured in this run, each
# pair back to back on one mock. Runs/s come from the store's events, as in
# bench.sh: first SUBMITTING to the last SUBMITTED (or SUCCEEDED) event.
# The mock's realistic waits are off (/control/behaviours), as in bench.sh.
# Durability is alike on both sides: the test server (tests/pg-env.sh,
# fsync off) and SQLite (WAL, synchronous NORMAL) both write each commit
# to the operating system, and neither waits for it to reach the disk.
# Writes BUILD/bench-pg.jsonl (one figure a line, which bench.sh adds to
# BUILD/bench.json) and merges the figures into an existing BUILD/bench.json.
# Knobs: PG_BENCH_RUNS [500] runs per store measurement,
# PG_BENCH_SCALE_RUNS [10000] per dispatcher measurement, PG_BENCH_ROUNDS [2]
# measurements of each side (their mean), PG_BENCH_POOLS [ecs cloud-run]
# pools for the store ratio, PG_BENCH_SCALE_POOL [ecs],
# PG_BENCH_DISPATCHERS [3], PG_BENCH_LATENCY [20], PG_BENCH_HOLD_RUNS [10000]
# and PG_BENCH_IDLE_SECONDS [25] (the idle dispatcher holding runs),
# PG_BENCH_HISTORY [200000] finished runs of the store with history and
# PG_BENCH_HISTORY_RUNS [2000] runs due in it,
# PG_BENCH_ONLY [store scale hold history], BENCH_CONCURRENCY [32] (max_submitting
# per dispatcher).
# PG_BENCH_ONLY=statements is not a speed figure: one dispatcher takes
# PG_BENCH_RUNS runs of PG_BENCH_SCALE_POOL to PG_BENCH_STATEMENTS_TARGET
# [SUBMITTED] (SUCCEEDED: polled every 0.2 s, as the store figures) at
# PG_BENCH_STATEMENTS_LATENCY [0] ms with pg_stat_statements loaded, and
# prints the server's statements and commits per run, and the busiest
# statements (what a change to the store's round trips must move;
# repeatable, unlike a rate).
# Usage: PUSHPOOL=build/pushpool sh tests/bench/pg_like.sh [BUILD]
BUILD_DIR=$(cd "${1:-build}" && pwd)
DISPATCHER_EXTRA="max_in_flight = 1000000"
. "$(dirname "$0")/../pg-lib.sh"
RUNS=${PG_BENCH_RUNS:-500}
# Every dispatcher pays a start of its own before its first submission
# (startup, its first claim, its ECS task definition registered: 60 to
# 100 ms at +20 ms, from the first claim to the first SUBMITTED), which
# weighs on 3 dispatchers about twice as much as on one, whose pass is
# twice as long or more. 5,000 runs took them 4 s when that was the pass
# and take 1.5 s now, so the pass is 10,000 runs (the most one `schedule`
# takes), about 3 s (docs/performance.md, forty-seventh round).
SCALE_RUNS=${PG_BENCH_SCALE_RUNS:-10000}
ROUNDS=${PG_BENCH_ROUNDS:-2}
CONC=${BENCH_CONCURRENCY:-32}
K=${PG_BENCH_DISPATCHERS:-3}
LAT=${PG_BENCH_LATENCY:-20}
OUT_LINES=$BUILD_DIR/bench-pg.jsonl
R=$T/results
: >"$R"

note() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	echo "pg_like: $*" >&2
	exit 1
}
only() { case " ${PG_BENCH_ONLY:-$1} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

curl -fsS -X POST -H 'Content-Type: application/json' -d '{"name":"*","on":false}' \
	"$BASE/control/behaviours" >/dev/null
mock_setup() { # LATENCY_MS
	curl -fsS -X POST "$BASE/control/reset" >/dev/null
	curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"latency_ms\":$1}" \
		"$BASE/control/faults" >/dev/null
}

# conf STORE NAME STATUS_INTERVAL: $T/NAME.conf on PostgreSQL (the shared
# database, emptied; pg-history: then HISTORY finished runs of
# HISTORY_POOL, analysed with the runs due by measure) or on SQLite (a
# fresh state_dir); prints its path.
conf() {
	f=$T/$2.conf
	sed -e "s/^status_interval = .*/status_interval = $3/" \
		-e "s/^max_submitting = .*/max_submitting = $CONC/" \
		-e "s|^state_dir = .*|state_dir = $T/$2|" "$CONF" >"$f"
	mkdir -p "$T/$2"
	if [ "$1" = sqlite ]; then
		sed -i '/^\[store\]/,$d' "$f"
	else
		psql_q "TRUNCATE runs, run_events, owner_leases"
	fi
	if [ "$1" = pg-history ]; then
		psql_q "INSERT INTO runs(id, pool, state, scheduled_ms, created_ms, updated_ms)
			SELECT 'h' || i, '${HISTORY_POOL:-ecs}', 'SUCCEEDED', i, i, i
			FROM generate_series(1, $HISTORY) AS i"
	fi
	echo "$f"
}
# q STORE NAME SQL: one value from the store of measurement NAME.
q() {
	if [ "$1" = sqlite ]; then sqlite3 "$T/$2/pushpool.db" "$3"; else psql_q "$3"; fi
}
# Runs/s of STORE NAME: runs reaching TARGET, first SUBMITTING to last TARGET.
rate() { # STORE NAME TARGET
	q "$1" "$2" "SELECT round(count(DISTINCT run_id) * 1000.0 /
		(max(CASE WHEN state = '$3' THEN ts_ms END) -
		 min(CASE WHEN state = 'SUBMITTING' THEN ts_ms END)), 2)
		FROM run_events WHERE state IN ('SUBMITTING', '$3')"
}

# wait_runs STORE NAME TARGET PIDS: until all RUNS runs of measurement NAME
# reached TARGET, while every dispatcher of PIDS lives, within a deadline.
wait_runs() {
	limit=$((120 + RUNS / 10))
	deadline=$(($(date +%s) + limit))
	# The dispatchers' logs first ("submitted as", or the run's end state:
	# grep, well under a millisecond), the store once they say all are in,
	# and once a second whatever they say. A psql process every 0.1 s cost
	# about 70 ms of CPU a look: a third of this two-core machine, taken
	# from the dispatchers, their server and the mock it measured.
	case $3 in
	SUBMITTED) logged='submitted as' ;;
	*) logged="): $3" ;;
	esac
	# A look starts two processes (grep, sleep): the clock is read with the
	# store, and each log's count is summed here rather than the logs
	# piped through cat. Its four processes took 6 % of the two cores
	# (perf) from the side bound by them, three dispatchers at +20 ms,
	# with the psql wrapper's (tests/pg-env.sh); 2.5 % now.
	i=0
	while :; do
		i=$((i + 1))
		seen=0
		for n in $(grep -c -h -F "$logged" "$T/$2"-*.log); do seen=$((seen + n)); done
		if [ "$seen" -ge "$RUNS" ] || [ $((i % 10)) = 0 ]; then
			# By event, not state: a run may have moved on since.
			[ "$(q "$1" "$2" "SELECT count(DISTINCT run_id) FROM run_events
				WHERE state = '$3'")" -ge "$RUNS" ] && break
			[ "$(date +%s)" -lt "$deadline" ] || die "$2: not all $RUNS runs $3 in $limit s"
		fi
		for p in $4; do
			kill -0 "$p" 2>/dev/null || die "serve of $2 exited: $(tail -n 5 "$T/$2"*.log)"
		done
		sleep 0.1
	done
}

# stop_serves NAME: SIGINT to the dispatchers of SERVE_PIDS (measurement
# NAME), each of which must exit 0.
stop_serves() {
	for p in $SERVE_PIDS; do kill -INT "$p"; done
	for p in $SERVE_PIDS; do wait "$p" || die "serve of $1 exited $? after SIGINT"; done
	SERVE_PIDS=
}

# CPU time (user + system, clock ticks) of the processes whose PIDs come
# on standard input, whitespace apart.
ticks() {
	tr -s ' ' '\n' | while read -r p; do cat "/proc/$p/stat" 2>/dev/null || true; done |
		awk '{ t += $14 + $15 } END { print t + 0 }'
}
# The test server's processes: its postmaster, its background processes
# and the sessions open now (the dispatchers' among them).
server_pids() {
	pm=$(head -n 1 "$PGDIR/data/postmaster.pid")
	echo "$pm"
	pgrep -P "$pm" || true
}

# measure STORE POOL TARGET DISPATCHERS LATENCY_MS: runs/s into RATE, and
# the CPU a run of the dispatchers, of the PostgreSQL server (0 on SQLite)
# and of the mock into CPU, a JSON object in ms (no subshell: a failure
# ends the bench, and cleanup stops the dispatchers). The dispatchers'
# sessions start and end inside the measurement, so the server's CPU is
# read before the dispatchers stop, as theirs is.
phase=0
measure() {
	st=$1 pool=$2 target=$3 k=$4 lat=$5
	phase=$((phase + 1))
	name=m$phase
	si=600
	[ "$target" = SUCCEEDED ] && si=0.2
	note "$st, $pool, to $target, $k dispatcher(s), +$lat ms"
	cf=$(conf "$st" "$name" "$si")
	"$PUSHPOOL" schedule -c "$cf" -p "$pool" --count "$RUNS" >/dev/null
	# As autovacuum would find a store in use: its history and a backlog.
	[ "$st" != pg-history ] || psql_q "ANALYZE runs"
	mock_setup "$lat"
	mock0=$(echo "$MOCK_PID" | ticks)
	server0=0
	[ "$st" = sqlite ] || server0=$(server_pids | ticks)
	pids=
	i=1
	while [ $i -le "$k" ]; do
		"$PUSHPOOL" serve -c "$cf" --owner "$name-$i" 2>"$T/$name-$i.log" &
		pids="$pids $!"
		i=$((i + 1))
	done
	SERVE_PIDS="$SERVE_PIDS $pids"
	wait_runs "$st" "$name" "$target" "$pids"
	serve_t=$(echo "$pids" | ticks)
	server_t=0
	[ "$st" = sqlite ] || server_t=$(($(server_pids | ticks) - server0))
	mock_t=$(($(echo "$MOCK_PID" | ticks) - mock0))
	stop_serves "$name"
	RATE=$(rate "$st" "$name" "$target")
	CPU=$(jq -nc --argjson n "$RUNS" --argjson hz "$(getconf CLK_TCK)" \
		--argjson d "$serve_t" --argjson p "$server_t" --argjson m "$mock_t" \
		'def ms: . * 1000 / $hz / $n * 1000 | round / 1000;
		 {dispatchers: ($d | ms), postgresql: ($p | ms), mock: ($m | ms)}')
}

# emit POOL LATENCY LABEL RATE BASELINE_RATE: the figure, with pair's CPU
# a run of each pass (cpu_ms_per_run: the measured side, then the baseline)
# and what bounds it (cpu_bound): each side's CPU a run, all processes
# together (the mean of its passes), the cores it kept busy at its mean
# rate, and the ratio the figure would read were both sides bound by
# their CPU a run alone (cpu_ratio). Where every process shares one
# machine, the figure sits near cpu_ratio times the two sides' busy
# cores' ratio (docs/performance.md, thirty-second round).
emit() {
	jq -nc --arg pool "$1" --argjson lat "$2" --arg cfg "$3" --argjson rate "$4" \
		--argjson base "$5" --argjson n "$RUNS" --argjson c "$CONC" \
		--argjson cpu_a "$A_CPU" --argjson cpu_b "$B_CPU" \
		--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		'def total: map(.dispatchers + .postgresql + .mock) | add / length;
		 def r(d): . * d | round / d;
		 ($cpu_a | total) as $ta | ($cpu_b | total) as $tb |
		 {figure: "throughput", store: "postgresql", measured: $date, pool: $pool,
		  latency_ms: $lat, config: $cfg, runs: $n, concurrency: $c, runs_per_s: $rate,
		  baseline_runs_per_s: $base, ratio: (($rate / $base * 100 | round) / 100),
		  cpu_ms_per_run: {measured: $cpu_a, baseline: $cpu_b},
		  cpu_bound: {measured_cpu_ms: ($ta | r(1000)), baseline_cpu_ms: ($tb | r(1000)),
		   measured_cores_busy: ($rate * $ta / 1000 | r(100)),
		   baseline_cores_busy: ($base * $tb / 1000 | r(100)),
		   cpu_ratio: (if $ta > 0 then ($tb / $ta | r(100)) else null end)}}' >>"$R"
	tail -n 1 "$R" >&2
}

# pair POOL TARGET LATENCY_MS A_STORE A_DISPATCHERS B_STORE B_DISPATCHERS:
# ROUNDS measurements of each, in the order A B, B A, A B, ... (a machine
# getting busier or quieter weighs on both); their mean runs/s into A_RATE
# and B_RATE, each pass's CPU a run (measure) into the arrays A_CPU and
# B_CPU.
pair() {
	sum_a=0 sum_b=0 r=1 A_CPU=[] B_CPU=[]
	while [ $r -le "$ROUNDS" ]; do
		for side in $([ $((r % 2)) = 1 ] && echo "a b" || echo "b a"); do
			if [ "$side" = a ]; then
				measure "$4" "$1" "$2" "$5" "$3"
				sum_a=$(jq -n "$sum_a + $RATE")
				A_CPU=$(jq -nc --argjson l "$A_CPU" --argjson c "$CPU" '$l + [$c]')
			else
				measure "$6" "$1" "$2" "$7" "$3"
				sum_b=$(jq -n "$sum_b + $RATE")
				B_CPU=$(jq -nc --argjson l "$B_CPU" --argjson c "$CPU" '$l + [$c]')
			fi
		done
		r=$((r + 1))
	done
	A_RATE=$(jq -n "$sum_a / $ROUNDS * 100 | round / 100")
	B_RATE=$(jq -n "$sum_b / $ROUNDS * 100 | round / 100")
}

# An idle dispatcher holding HOLD_RUNS ECS runs in flight, once all are
# submitted (status_interval 600 s: no status polls), over IDLE_SECONDS at
# the default lease_seconds (a renewal every 20 s, so one in the window):
# the CPU of the dispatcher and of its server sessions (its own and its
# claims': docs/store.md, "Claims sent without waiting"), and the WAL the
# server wrote, against the same on an empty store. What holding runs
# costs the shared server while nothing happens. First, before the other
# measurements: the statistics the server keeps of their tables (runs of
# three owners, then emptied) led its planner to plan each claim anew,
# 2-3 ms each, which this figure would measure instead (docs/
# performance.md, twenty-first round).
if only hold; then
	store_runs=$RUNS
	RUNS=${PG_BENCH_HOLD_RUNS:-10000}
	IDLE=${PG_BENCH_IDLE_SECONDS:-25}
	# ticks_ns PID...: CPU ns of the processes, summed (%.0f: mawk's %d stops
	# at 2^31).
	ticks_ns() { for p; do awk '{ print $1 }' "/proc/$p/schedstat"; done | awk '{ s += $1 } END { printf "%.0f", s }'; }
	# hold_window NAME: "CPU_MS WAL_BYTES" of dispatcher NAME-1 over IDLE.
	hold_window() {
		backends=$(psql_q "SELECT pid FROM pg_stat_activity WHERE application_name = 'pushpool'")
		[ -n "$backends" ] || die "$1: no server session of the dispatcher"
		lsn=$(psql_q "SELECT pg_current_wal_lsn()")
		a=$(ticks_ns "$SERVE_PIDS" $backends)
		sleep "$IDLE"
		b=$(ticks_ns "$SERVE_PIDS" $backends)
		echo "$(((b - a) / 1000000)) $(psql_q "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn')")"
	}
	hold_serve() { # NAME CONF
		mock_setup 0
		"$PUSHPOOL" serve -c "$2" --owner "$1-1" 2>"$T/$1-1.log" &
		SERVE_PIDS=$!
	}
	note "pg, idle dispatcher holding $RUNS ecs runs in flight"
	cf=$(conf pg hold 600)
	"$PUSHPOOL" schedule -c "$cf" -p ecs --count "$RUNS" >/dev/null
	hold_serve hold "$cf"
	wait_runs pg hold SUBMITTED "$SERVE_PIDS"
	set -- $(hold_window hold)
	held_ms=$1 held_wal=$2
	stop_serves hold
	note "pg, idle dispatcher, empty store"
	cf=$(conf pg hold-empty 600)
	hold_serve hold-empty "$cf"
	until_deadline 60 0.05 serving hold-empty-1 || die "hold-empty never started serving"
	set -- $(hold_window hold-empty)
	empty_ms=$1 empty_wal=$2
	stop_serves hold-empty
	jq -nc --argjson n "$RUNS" --argjson s "$IDLE" --argjson held "$held_ms" \
		--argjson empty "$empty_ms" --argjson wal "$held_wal" --argjson ewal "$empty_wal" \
		--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		'{figure: "idle_in_flight", store: "postgresql", measured: $date, in_flight: $n,
		  seconds: $s, cpu_ms: $held, empty_cpu_ms: $empty, wal_bytes: $wal,
		  empty_wal_bytes: $ewal, core_pct: ($held / $s / 10 * 100 | round / 100),
		  ratio: (if $empty > 0 then ($held / $empty * 100 | round / 100) else null end)}' >>"$R"
	tail -n 1 "$R" >&2
	RUNS=$store_runs
fi

if only store; then
	for pool in ${PG_BENCH_POOLS:-ecs cloud-run}; do
		for target in SUBMITTED SUCCEEDED; do
			pair "$pool" "$target" 0 pg 1 sqlite 1
			emit "$pool" 0 "PostgreSQL, 1 dispatcher, to $target; baseline SQLite" \
				"$A_RATE" "$B_RATE"
		done
	done
fi
# A store with history: HISTORY finished runs in the pool's table,
# analysed, as a store in use for a while has them, against an empty
# store, each with a backlog of HISTORY_RUNS due runs. What the planner
# makes of the statistics is what this measures: with such a store and
# 1,000 or more runs due it planned every claim anew until the claim kept
# its generic plan (docs/performance.md, step 57).
if only history; then
	pool=${PG_BENCH_SCALE_POOL:-ecs}
	store_runs=$RUNS
	RUNS=${PG_BENCH_HISTORY_RUNS:-2000}
	HISTORY=${PG_BENCH_HISTORY:-200000} HISTORY_POOL=$pool
	pair "$pool" SUBMITTED 0 pg-history 1 pg 1
	jq -nc --arg pool "$pool" --argjson stored "$HISTORY" --argjson rate "$A_RATE" \
		--argjson base "$B_RATE" --argjson n "$RUNS" \
		--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		'{figure: "history", store: "postgresql", measured: $date, pool: $pool,
		  stored: $stored, runs: $n, runs_per_s: $rate, empty_runs_per_s: $base,
		  ratio: (($rate / $base * 100 | round) / 100)}' >>"$R"
	tail -n 1 "$R" >&2
	RUNS=$store_runs
fi
if only scale; then
	pool=${PG_BENCH_SCALE_POOL:-ecs}
	RUNS=$SCALE_RUNS
	pair "$pool" SUBMITTED "$LAT" pg "$K" pg 1
	emit "$pool" "$LAT" "PostgreSQL, $K dispatchers, to SUBMITTED; baseline 1 dispatcher" \
		"$A_RATE" "$B_RATE"
fi

if [ "${PG_BENCH_ONLY:-}" = statements ]; then
	psql_q "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
	sh "$HERE/tests/pg-env.sh" restart "$PGDIR"
	psql_q "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
	pool=${PG_BENCH_SCALE_POOL:-ecs}
	target=${PG_BENCH_STATEMENTS_TARGET:-SUBMITTED}
	si=600
	[ "$target" = SUCCEEDED ] && si=0.2
	cf=$(conf pg s1 $si)
	"$PUSHPOOL" schedule -c "$cf" -p "$pool" --count "$RUNS" >/dev/null
	mock_setup "${PG_BENCH_STATEMENTS_LATENCY:-0}"
	psql_q "SELECT pg_stat_statements_reset(), pg_stat_reset()" >/dev/null
	xact0=$(psql_q "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
	"$PUSHPOOL" serve -c "$cf" --owner s1 2>"$T/s1-1.log" &
	SERVE_PIDS=$!
	wait_runs pg s1 "$target" "$SERVE_PIDS"
	# CPU of the dispatcher and of its server sessions, before the
	# releases at exit.
	cpu_serve=$(echo "$SERVE_PIDS" | ticks)
	cpu_backend=$(psql_q "SELECT pid FROM pg_stat_activity WHERE application_name = 'pushpool'" |
		ticks)
	hz=$(getconf CLK_TCK)
	stop_serves s1
	echo "CPU ms per run: dispatcher $(jq -n "$cpu_serve * 1000 / $hz / $RUNS * 100 | round / 100"), server session $(jq -n "$cpu_backend * 1000 / $hz / $RUNS * 100 | round / 100")"
	# The psql sessions of this script count too: only the dispatcher's
	# statements (application_name pushpool cannot be told apart in
	# pg_stat_statements, so the script's own are left out by text).
	psql_q "SELECT 'statements per run: ' || round(sum(calls)::numeric / $RUNS, 2)
		FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%'
		AND query NOT LIKE 'SELECT count(%' AND query NOT LIKE 'TRUNCATE%'"
	psql_q "SELECT 'commits per run: ' || round((xact_commit - $xact0)::numeric / $RUNS, 2)
		FROM pg_stat_database WHERE datname = current_database()"
	psql_q "SELECT round(calls::numeric / $RUNS, 2) || '  ' || left(regexp_replace(query,
		'\s+', ' ', 'g'), 90) FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%'
		AND query NOT LIKE 'SELECT count(%' AND query NOT LIKE 'TRUNCATE%'
		ORDER BY calls DESC LIMIT 12"
	psql_q "SELECT round(calls::numeric / $RUNS, 2) || ' calls, mean ms ' || round(mean_exec_time::numeric, 3) || ' plan ms ' || round(mean_plan_time::numeric, 3) || '  ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 40) FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 5"
	exit 0
fi

cp "$R" "$OUT_LINES"
# Into an existing bench.json (a later `make pg-bench`): this store's
# figures replace the previous ones.
if [ -f "$BUILD_DIR/bench.json" ]; then
	jq --slurpfile pg "$R" '.figures = [.figures[] | select(.store != "postgresql")] + $pg' \
		"$BUILD_DIR/bench.json" >"$T/bench.json" && cp "$T/bench.json" "$BUILD_DIR/bench.json"
fi
jq -s '{date: (.[0].measured), machine: {cpus: 0, kernel: "-"}, command: "pg_like.sh",
	figures: .}' "$R" >"$T/only.json"
sh "$(dirname "$0")/table.sh" "$T/only.json" | tail -n +3
