#!/bin/sh
# `make bench`: the dispatcher's performance figures, each against a baseline
# measured in the same run (the machines are noisy). Prints a table and writes
# BUILD/bench.json. docs/performance.md explains every figure and its
# baseline. Scale knobs (defaults in brackets):
#   BENCH_RUNS [500]            runs per throughput measurement
#   BENCH_CONCURRENCY [32]      submissions in flight (max_submitting = baseline slots)
#   BENCH_CPU_RUNS [100]        runs per pool type under callgrind
#   BENCH_INFLIGHT [10000]      runs held in flight for the memory figure
#   BENCH_STORE_RUNS [100000]   runs in the store for the memory figure
#   BENCH_LATENCY_SECONDS [30]  how long runs arrive at 1,000 runs/min
#   BENCH_ONLY [all]            space-separated sections to run, of:
#                               throughput prefect cpu micro memory curve watch
#                               latency startup
#   BENCH_WATCH_RUNS [10000], BENCH_WATCH_SECONDS [20]: watch's ECS runs polled,
#                               and for how long
#   BENCH_POOLS [cloud-run ecs aci modal], BENCH_LATENCIES [0 20]: throughput's
#   BENCH_PREFECT_LATENCIES [0 50]  prefect's: latency of the mock's Prefect API
#   BENCH_PREFECT_HISTORY [100000]  prefect's: finished runs stored for its
#                               figure with history (0: skip)
#   BENCH_CURVE_INFLIGHT [1000 10000 100000]  runs in flight for the curve (the
#                               mock holds at most 100,000 ECS tasks)
#   BENCH_CURVE_STORED [10000 100000 1000000] finished runs stored for claim time
#   BENCH_CURVE_HISTORY [200000] finished runs stored for throughput with
#                               history (0: skip); BENCH_HISTORY_RUNS [2000] due runs
#   BENCH_IDLE_SECONDS [25]     how long an idle serve is measured: holding the
#                               most runs in flight of the curve, and with metrics
#                               on the largest store of BENCH_CURVE_STORED (0: skip)
set -eu
BUILD=${1:-build}
PUSHPOOL=$BUILD/pushpool
BASELINE=$BUILD/bench/baseline
MICRO=$BUILD/bench/micro
CLAIM=$BUILD/bench/claim
OUT=$BUILD/bench.json
RUNS=${BENCH_RUNS:-500}
CONC=${BENCH_CONCURRENCY:-32}
HISTORY_RUNS=${BENCH_HISTORY_RUNS:-2000}
CPU_RUNS=${BENCH_CPU_RUNS:-100}
INFLIGHT=${BENCH_INFLIGHT:-10000}
STORE_RUNS=${BENCH_STORE_RUNS:-100000}
LAT_SECONDS=${BENCH_LATENCY_SECONDS:-30}
T=$(mktemp -d)
R=$T/results # one JSON object per line, merged into $OUT at the end
: >"$R"
MOCK_PID=
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	[ -n "${KEEP_T:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM

die() {
	echo "bench: $*" >&2
	exit 1
}
ms_now() { date +%s%3N; }
pct() { # P -> the P-th percentile of the sorted numbers in $T/lat
	awk -v p="$1" '{ v[NR] = $1 }
		END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print v[i] }' "$T/lat"
}
# Whether section $1 runs (BENCH_ONLY).
only() { case " ${BENCH_ONLY:-$1} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
note() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
emit() { printf '%s\n' "$1" >>"$R"; }

# One mock for the whole bench, and the helpers of a pass (lib.sh).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../wait-lib.sh"

# ---- throughput ----
# The baseline must send what the dispatcher sends. Each JSON body of its
# request chain (`baseline --show`) is matched with the block of `pushpool
# render --request` whose header or request line has PATTERN, and their
# members compared, array entries included; only values differ (run ids,
# names). A baseline behind the providers would send a cheaper request.
same_bodies() { # POOL METHOD PATTERN
	"$BASELINE" "$1" "$BASE" 1 1 --show | awk -F '\t' -v m="$2" '$1 == m { print $2 }' \
		>"$T/body-base.json"
	"$PUSHPOOL" render -c "$T/pushpool.conf" -p "$1" --request 2>/dev/null |
		awk -v pat="$3" '/^# / { if (take) exit; hit = $0 ~ pat; body = 0; next }
			!body && $0 ~ pat { hit = 1 }
			!body && /^$/ { body = hit; take = hit; next }
			body { print }' >"$T/body-disp.json"
	shape='[paths(scalars) | map(tostring) | join(".")] | sort'
	[ -s "$T/body-base.json" ] && [ -s "$T/body-disp.json" ] ||
		die "$1: no $2 body to compare (baseline --show, render --request)"
	jq -e --slurpfile d "$T/body-disp.json" "($shape) == (\$d[0] | $shape)" \
		"$T/body-base.json" >/dev/null ||
		die "$1: the baseline's $2 body differs from the dispatcher's: $(jq -c \
			--slurpfile d "$T/body-disp.json" "($shape) as \$b | (\$d[0] | $shape) as \$p |
			{baseline_only: (\$b - \$p), dispatcher_only: (\$p - \$b)}" "$T/body-base.json")"
}
phase=0
# One serve on a fresh store until RUNS runs of POOL are SUBMITTED: sets
# pass_rate (runs/s at the mock), pass_own (runs/s by the store's events)
# and pass_req (requests per run at the mock).
dispatcher_pass() { # POOL RUNS LATENCY_MS EXTRA_DISPATCHER_LINES
	phase=$((phase + 1))
	cf=$(conf "tp$phase" "$4")
	"$PUSHPOOL" schedule -c "$cf" -p "$1" --count "$2" >/dev/null
	mock_reset
	mock_latency "$3"
	serve_until_submitted "tp$phase" "$cf" "$2"
	stop_serve
	stats=$(mock_stats)
	pass_rate=$(mock_rate "$2" "$stats")
	pass_own=$(store_rate "tp$phase")
	pass_req=$(per_run_requests "$2" "$stats")
}
# The same for the baseline client; pass_own is its own timer's rate.
baseline_pass() { # POOL RUNS LATENCY_MS
	mock_reset
	mock_latency "$3"
	b=$(baseline_run "$1" "$2" "$CONC") || die "baseline $1 failed"
	stats=$(mock_stats)
	pass_rate=$(mock_rate "$2" "$stats")
	pass_own=$(printf '%s' "$b" | jq .runs_per_s)
	pass_req=$(per_run_requests "$2" "$stats")
}
# Passes of two sides, side_a and side_b (functions the caller defines,
# each setting pass_rate and pass_req), in the order A B B A: a drift of
# the machine or the mock over the passes falls on both sides alike. The
# rates go to A_RATES and B_RATES (pass_own, where a side sets it, to A_OWN
# and B_OWN), the first pass's pass_req of each side to A_REQ and B_REQ. A pass that stalls (about one Modal baseline pass in six
# runs at a tenth of the others' rate, waiting on idle virtual CPUs: step
# 20) would move a mean of two by half: when the two passes of a side are
# more than 1.5 times apart, each side gets three more passes (B, A in
# turn), and the figure is each side's median of five (JQ_MID). FIVE set:
# five passes a side whatever the first four read, for a figure whose
# passes last so short a time that what else the two cores do in one moves
# it (throughput at +0 ms: 500 ECS runs in a twentieth of a second).
ab_passes() { # WHAT [FIVE]
	side_a
	a1=$pass_rate A_REQ=$pass_req A_OWN=${pass_own:-}
	side_b
	b1=$pass_rate B_REQ=$pass_req B_OWN=${pass_own:-}
	side_b
	b2=$pass_rate B_OWN="$B_OWN ${pass_own:-}"
	side_a
	a2=$pass_rate A_OWN="$A_OWN ${pass_own:-}"
	A_RATES="$a1 $a2" B_RATES="$b1 $b2"
	if [ -z "${2:-}" ]; then
		agree=$(jq -n --argjson a "[$a1, $a2]" --argjson b "[$b1, $b2]" \
			'[$a, $b] | all(max <= 1.5 * ([min, 0.01] | max))')
		[ "$agree" = false ] || return 0
		note "$1: passes disagree ($A_RATES / $B_RATES), three more of each"
	fi
	for _ in 1 2 3; do
		side_b
		B_RATES="$B_RATES $pass_rate" B_OWN="$B_OWN ${pass_own:-}"
		side_a
		A_RATES="$A_RATES $pass_rate" A_OWN="$A_OWN ${pass_own:-}"
	done
}
# Two passes: their mean; five: their median.
JQ_MID='def mid: if length > 2 then sort[length / 2 | floor] else add / length end;'
json_list() { echo "[$(echo $1 | tr ' ' ',')]"; }
# The JSON line of a figure from ab_passes: HEAD (a jq object over the jq
# arguments that follow it), then each side's rate (JQ_MID of its passes),
# the passes, the ratio, each side's own clock, requests per run, and
# SAME_REQUESTS (whether the sides' requests per run agree).
ab_figure() { # SAME_REQUESTS HEAD [JQ ARGUMENTS...]
	ab_same=$1 ab_head=$2
	shift 2
	jq -nc --argjson dp "$(json_list "$A_RATES")" --argjson bp "$(json_list "$B_RATES")" \
		--argjson down "$(json_list "$A_OWN")" --argjson bown "$(json_list "$B_OWN")" \
		--argjson dreq "$A_REQ" --argjson breq "$B_REQ" --argjson same "$ab_same" \
		--argjson c "$CONC" "$@" \
		"$JQ_MID"'($dp | mid * 100 | round / 100) as $rate
		| ($bp | mid * 100 | round / 100) as $base
		| ('"$ab_head"') + {concurrency: $c, runs_per_s: $rate, baseline_runs_per_s: $base,
		  passes: {dispatcher: $dp, baseline: $bp},
		  ratio: (if $base > 0 then ($rate / $base * 100 | round) / 100 else null end),
		  own_clocks: {dispatcher: $down, baseline: $bown,
		    ratio: (($down | mid) / ($bown | mid) * 100 | round / 100)},
		  requests_per_run: $dreq, baseline_requests_per_run: $breq,
		  same_requests: $same}'
}

# The JSON line of a figure from ab_passes with an empty store as side A
# and one holding STORED finished runs as side B: RUNS due runs a pass.
history_figure() { # FIGURE STORED RUNS
	jq -nc --arg f "$1" --argjson n "$2" --argjson runs "$3" \
		--argjson ep "$(json_list "$A_RATES")" --argjson hp "$(json_list "$B_RATES")" \
		"$JQ_MID"'($hp | mid * 100 | round / 100) as $rate
		| ($ep | mid * 100 | round / 100) as $base
		| {figure: $f, pool: "ecs", stored: $n, runs: $runs,
		  runs_per_s: $rate, empty_runs_per_s: $base,
		  passes: {history: $hp, empty: $ep},
		  ratio: (if $base > 0 then ($rate / $base * 100 | round) / 100 else null end)}'
}

throughput() { # POOL LATENCY_MS [EXTRA_DISPATCHER_LINES] [LABEL]
	pool=$1 lat=$2 extra=${3:-} label=${4:-default}
	runs=$RUNS
	# An ACI submission waits out the create operation (Retry-After: 1, two
	# polls), so its rate is bound by that, not by CPU: fewer runs suffice.
	[ "$pool" = aci ] && runs=$((RUNS / 5))
	note "throughput: $pool, +$lat ms, $label config"
	side_a() { dispatcher_pass "$pool" "$runs" "$lat" "$extra"; }
	side_b() { baseline_pass "$pool" "$runs" "$lat"; }
	ab_passes "throughput: $pool, +$lat ms" "$([ "$lat" = 0 ] && [ "$pool" != aci ] && echo five)"
	same=$(jq -n --argjson a "$A_REQ" --argjson b "$B_REQ" '$a == $b')
	emit "$(ab_figure "$same" '{figure: "throughput", pool: $pool, latency_ms: $lat,
		config: $cfg, runs: $n}' --arg pool "$pool" --argjson lat "$lat" --arg cfg "$label" \
		--argjson n "$runs")"
}
if only throughput; then
	# The mock's first requests after it starts grow its heap and start
	# its connection threads; whichever side came first paid for that.
	# One unmeasured baseline pass per pool (ACI's is bound by its create
	# protocol and left out) does it for both.
	same_bodies cloud-run POST 'jobId='
	same_bodies ecs POST 'RunTask'
	same_bodies aci PUT '^PUT '
	note "throughput: warming the mock"
	for pool in ${BENCH_POOLS:-cloud-run ecs aci modal}; do
		[ "$pool" = aci ] || baseline_pass "$pool" "$RUNS" 0
	done
	for lat in ${BENCH_LATENCIES:-0 20}; do
		for pool in ${BENCH_POOLS:-cloud-run ecs aci modal}; do
			throughput "$pool" "$lat"
		done
	done
	# Diagnosis (docs/performance.md): claims every 12.5 ms instead of
	# 250 ms, and the baseline under the two other connection policies:
	# a fresh connection per non-GET request (lib/http.c before issue 23)
	# and every connection reused (the ceiling; Cloud Run's :run included).
	throughput ecs 0 "poll_interval = 0.05" poll_interval=0.05
	note "baseline under other connection policies"
	for policy in fresh-connect reuse-all; do
		for pool in cloud-run ecs; do
			mock_reset
			b=$(baseline_run "$pool" "$RUNS" "$CONC" "--$policy") ||
				die "baseline $pool failed"
			emit "$(printf '%s' "$b" |
				jq -c '{figure: "baseline_connections", pool, connections, runs_per_s}')"
		done
	done
fi

# ---- throughput of flow runs taken from Prefect ----
# serve with [source "prefect"] against `baseline prefect-ecs`, a bare
# libcurl worker for the same chain of calls per flow run (read, PENDING,
# RunTask, infrastructure_pid), on the mock's Prefect API with its latency
# fault at each of BENCH_PREFECT_LATENCIES.
PF=$BASE/prefect/api
PF_POOL=ecs
printf '%s\n' "$PF_KEY" >"$T/prefect.key"
chmod 600 "$T/prefect.key"
# The calls of one flow run's chain, the kinds both sides' rate and
# request counts are compared on; the rest (listing, heartbeats, the
# dispatcher's cancellation checks) is each side's own way of finding work.
PF_CHAIN='^(prefect:GET flow_runs|prefect:POST flow_runs/set_state|ecs:RunTask|prefect:PATCH flow_runs)$'
pf_call() { # METHOD PATH [CURL ARGS...]
	pf_method=$1 pf_path=$2
	shift 2
	curl -fsS -X "$pf_method" -H "Authorization: Bearer $PF_KEY" \
		-H 'Content-Type: application/json' "$@" "$PF$pf_path"
}
# A fresh Prefect state (/control/reset clears the mock's Prefect API too):
# work pool PF_POOL of type ecs:push with its default template, a deployment,
# and RUNS flow runs due now, created by one curl (each URL of its config
# file gets the same POST, one after the other on one connection; a process
# each would be most of the set-up on a busy machine). The simulated flows are off: a
# flow reports only once its task's container starts, an hour away here
# (lib.sh), and the mock would only carry them through every call.
pf_fresh() { # RUNS
	mock_reset
	curl -fsS -X POST -H 'Content-Type: application/json' -d '{"simulate":false}' \
		"$BASE/prefect/control/flows" >/dev/null
	[ -s "$T/pf-pool.json" ] || "$PUSHPOOL" template default --type ecs:push |
		jq -c --arg n "$PF_POOL" '{name: $n, type: "ecs:push", base_job_template: .}' \
			>"$T/pf-pool.json"
	pf_call POST /work_pools/ -d "@$T/pf-pool.json" >/dev/null
	flow=$(pf_call POST /flows/ -d '{"name":"bench-flow"}' | jq -r .id)
	dep=$(pf_call POST /deployments/ -d "$(jq -nc --arg f "$flow" --arg p "$PF_POOL" \
		'{name: "bench", flow_id: $f, work_pool_name: $p}')" | jq -r .id)
	awk -v n="$1" -v u="$PF/deployments/$dep/create_flow_run" \
		'BEGIN { for (i = 0; i < n; i++) printf "url = \"%s\"\n", u }' >"$T/pf-runs.curl"
	curl -fsS -X POST -H "Authorization: Bearer $PF_KEY" -H 'Content-Type: application/json' \
		-d '{}' -K "$T/pf-runs.curl" >/dev/null
}
pf_latency() {
	curl -fsS -X POST -H 'Content-Type: application/json' \
		-d "{\"api\":\"prefect\",\"latency_ms\":$1}" "$BASE/control/faults" >/dev/null
}
# A dispatcher config on its own store with the Prefect source at its
# default poll_interval (5 s): the runs past the first page are taken by
# the polls a backlog brings forward (pp_source_ops.backlog), as a user's
# burst would be. A short interval is slower: each poll waits on the
# server with the loop's thread (docs/prefect.md).
pf_conf() { # NAME
	c=$(conf "$1")
	cat >>"$c" <<CONF

[source "prefect"]
api_url = $PF
api_key_file = $T/prefect.key
pools = $PF_POOL
lookahead_seconds = 10
CONF
	echo "$c"
}
# serve sends a run's infrastructure_pid from its outbox after the run is
# SUBMITTED: the pass ends when the mock has had them all.
pf_wait_patched() { # RUNS
	limit=$((300 + $1 / 100)) # as serve_until_submitted's: a busy machine's
	deadline=$(($(date +%s) + limit))
	until [ "$(mock_stats | jq '.keyed.requests["prefect:PATCH flow_runs"] // 0')" -ge "$1" ]; do
		[ "$(date +%s)" -lt "$deadline" ] ||
			die "prefect: not every run's infrastructure_pid set in $limit s"
		sleep 0.05
	done
}
# The mock's stats with only the chain's calls, for mock_rate.
pf_chain() { jq -c --arg k "$PF_CHAIN" '.keyed.requests |= with_entries(select(.key | test($k)))
	| .request_times |= with_entries(select(.key | test($k)))'; }
# Requests per run without the set-up's flow runs.
pf_per_run() { # RUNS STATS
	per_run_requests "$1" "$(printf '%s' "$2" |
		jq -c 'del(.keyed.requests["prefect:POST deployments/create_flow_run"])')"
}
pf_dispatcher_pass() { # RUNS LATENCY_MS [STORED]
	phase=$((phase + 1))
	cf=$(pf_conf "pf$phase")
	# The store made before serve starts, as `schedule` makes it for the
	# other passes: serve_until_submitted reads it first. STORED finished
	# runs in it: the history a dispatcher accumulates, which each poll's
	# look for the listed runs in the store must not read.
	"$PUSHPOOL" store migrate -c "$cf" >/dev/null
	[ "${3:-0}" -eq 0 ] || db "pf$phase" "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL
			SELECT i + 1 FROM k WHERE i < $3)
		INSERT INTO runs (id, pool, scheduled_ms, state, created_ms, updated_ms, attempt,
				  infra_id)
		SELECT printf('hist-%09d', i), '$PF_POOL', i, 'SUCCEEDED', i, i, 1,
		       printf('infra-%d', i)
		FROM k"
	pf_fresh "$1"
	pf_latency "$2"
	serve_until_submitted "pf$phase" "$cf" "$1"
	pf_wait_patched "$1"
	stop_serve
	stats=$(mock_stats)
	pass_rate=$(mock_rate "$1" "$(printf '%s' "$stats" | pf_chain)")
	pass_own=$(store_rate "pf$phase")
	pass_req=$(pf_per_run "$1" "$stats")
}
pf_baseline() { # RUNS CONCURRENCY [OPTIONS]
	BENCH_PREFECT_KEY=$PF_KEY BENCH_PREFECT_POOL=$PF_POOL BENCH_ECS_URL=$BASE/aws/ecs/ \
		BENCH_AWS_KEY="$AKID:$AWS_SECRET" "$BASELINE" prefect-ecs "$PF" "$1" "$2" ${3:-}
}
pf_baseline_pass() { # RUNS LATENCY_MS
	pf_fresh "$1"
	pf_latency "$2"
	b=$(pf_baseline "$1" "$CONC") || die "baseline prefect-ecs failed"
	stats=$(mock_stats)
	pass_rate=$(mock_rate "$1" "$(printf '%s' "$stats" | pf_chain)")
	pass_own=$(printf '%s' "$b" | jq .runs_per_s)
	pass_req=$(pf_per_run "$1" "$stats")
}
# The baseline's Prefect chain must send the bodies serve sends, as
# same_bodies checks for the clouds; but `render --request` knows nothing
# of a flow run's Prefect env and tags, and serve logs no bodies: its
# requests are read off `pushpool once` under strace (the sendto calls of
# its HTTP/1.1 connections), and each of the chain's bodies (the listing,
# the PENDING proposal, RunTask, the PATCH) compared member by member with
# the baseline's (--show, in the chain's order).
pf_same_bodies() {
	if ! strace -o /dev/null true 2>/dev/null; then
		note "prefect: no strace here: the baseline's bodies are not compared with serve's"
		return
	fi
	pf_fresh 1
	cf=$(pf_conf pf-bodies)
	strace -f -qq -e trace=sendto -s 65536 -o "$T/pf-bodies.strace" \
		"$PUSHPOOL" once -c "$cf" >/dev/null 2>"$T/pf-bodies.log" ||
		die "prefect: once under strace failed: $(tail -n 3 "$T/pf-bodies.log")"
	pf_baseline 1 1 --show >"$T/pf-show" || die "prefect: baseline --show failed"
	cat >"$T/pf-bodies.py" <<'PY'
import codecs, json, re, sys
# Each sendto's bytes, a request's continuation joined to its start.
sent, last = [], {}
for line in open(sys.argv[1]):
    m = re.search(r'sendto\((\d+), "((?:[^"\\]|\\.)*)"', line)
    if not m:
        continue
    data = codecs.escape_decode(m.group(2).encode())[0].decode('latin-1')
    if re.match(r'[A-Z]+ \S+ HTTP/1\.1\r\n', data) or m.group(1) not in last:
        last[m.group(1)] = len(sent)
        sent.append(data)
    else:
        sent[last[m.group(1)]] += data
def kind(req):
    head, _, body = req.partition('\r\n\r\n')
    line = head.split('\r\n')[0]
    if line.startswith('PATCH '):
        return 'patch', body
    if 'get_scheduled_flow_runs ' in line:
        return 'list', body
    if '/set_state ' in line:
        return 'propose', body
    if re.search(r'^X-Amz-Target: \S+\.RunTask\r?$', head, re.M | re.I):
        return 'runtask', body
    return None, body
disp = {}
for req in sent:
    k, body = kind(req)
    if k and k not in disp:
        disp[k] = json.loads(body)
base = [json.loads(l.split('\t', 1)[1]) for l in open(sys.argv[2])]
def paths(v, at=''):
    if isinstance(v, dict):
        return {p for k, x in v.items() for p in paths(x, f'{at}.{k}' if at else k)}
    if isinstance(v, list):
        return {p for i, x in enumerate(v) for p in paths(x, f'{at}.{i}' if at else str(i))}
    return {at}
bad = []
for k, b in zip(['list', 'propose', 'runtask', 'patch'], base):
    if k not in disp:
        bad.append(f'serve sent no {k} request')
    elif paths(b) != paths(disp[k]):
        bad.append(f'{k}: baseline only {sorted(paths(b) - paths(disp[k]))}, '
                   f'dispatcher only {sorted(paths(disp[k]) - paths(b))}')
if len(base) != 4:
    bad.append(f'baseline --show gave {len(base)} bodies, not 4')
if bad:
    sys.exit("the baseline's bodies differ from serve's: " + '; '.join(bad))
PY
	python3 "$T/pf-bodies.py" "$T/pf-bodies.strace" "$T/pf-show" || die "prefect: see above"
}
if only prefect; then
	pf_same_bodies
	# As the throughput section's: one unmeasured pass for the mock's heap
	# and threads (here its Prefect API's).
	note "prefect: warming the mock"
	pf_baseline_pass "$RUNS" 0
	for lat in ${BENCH_PREFECT_LATENCIES:-0 50}; do
		note "throughput: ecs from Prefect, +$lat ms"
		side_a() { pf_dispatcher_pass "$RUNS" "$lat"; }
		side_b() { pf_baseline_pass "$RUNS" "$lat"; }
		ab_passes "throughput: ecs from Prefect, +$lat ms"
		same=$(jq -n --argjson a "$A_REQ" --argjson b "$B_REQ" --arg k "$PF_CHAIN" \
			'def chain: with_entries(select(.key | test($k))); ($a | chain) == ($b | chain)')
		emit "$(ab_figure "$same" '{figure: "throughput_prefect", pool: "ecs",
			latency_ms: $lat, runs: $n, poll_interval: 5}' --argjson lat "$lat" \
			--argjson n "$RUNS")"
	done
	# The same dispatcher at +0 ms on a store empty and on one holding
	# BENCH_PREFECT_HISTORY finished runs: empty, history, history, empty.
	hist=${BENCH_PREFECT_HISTORY:-100000}
	if [ "$hist" -gt 0 ]; then
		note "throughput: ecs from Prefect, +0 ms, $hist finished runs stored"
		side_a() { pf_dispatcher_pass "$RUNS" 0; }
		side_b() { pf_dispatcher_pass "$RUNS" 0 "$hist"; }
		ab_passes "throughput: ecs from Prefect with $hist finished runs stored"
		emit "$(history_figure throughput_prefect_history "$hist" "$RUNS")"
	fi
fi

# ---- CPU per run: callgrind over serve and over the baseline ----
if only cpu; then
	note "callgrind: $CPU_RUNS runs per pool type (cloud-run, ecs, aci)"
	mock_reset
	cf=$(conf cpu)
	for pool in cloud-run ecs aci; do
		"$PUSHPOOL" schedule -c "$cf" -p "$pool" --count "$CPU_RUNS" >/dev/null
	done
	serve_until_submitted cpu "$cf" $((CPU_RUNS * 3)) \
		valgrind --tool=callgrind --callgrind-out-file="$T/cg.serve" --log-file="$T/cg.serve.log"
	stop_serve
	note "callgrind: empty once (startup and shutdown, subtracted)"
	cf0=$(conf cpu-empty)
	valgrind --tool=callgrind --callgrind-out-file="$T/cg.empty" --log-file="$T/cg.empty.log" \
		"$PUSHPOOL" once -c "$cf0" >/dev/null 2>&1
	for pool in cloud-run ecs aci; do
		mock_reset
		BASELINE_WRAP="valgrind --tool=callgrind --callgrind-out-file=$T/cg.base.$pool"
		BASELINE_WRAP="$BASELINE_WRAP --log-file=$T/cg.base.$pool.log"
		baseline_run "$pool" "$CPU_RUNS" "$CONC" >/dev/null
	done
	BASELINE_WRAP=
	# Inclusive cost of the entry points of each part; they do not nest (the
	# signature is applied inside the HTTP layer's transfer setup, so it is
	# taken out of HTTP). JSON is parsing (responses, variables) and writing
	# (request bodies) outside the renderer; "other" is the rest: the loop,
	# providers, malloc, process startup.
	cg_split() { # FILE -> JSON {total, render, sign, json, http, store, log, other}
		callgrind_annotate --threshold=100 --inclusive=yes --auto=no --show-percs=no "$1" \
			2>/dev/null |
			awk '
			function take(k) { v = $1; gsub(",", "", v); s[k] += v }
			/PROGRAM TOTALS/ { t = $1; gsub(",", "", t) }
			!/\[/ { next }
			/ render\/render\.c:pp_render_job(_cached)? / { take("render") }
			/ auth\/cred\.c:pp_cred_apply / { take("sign") }
			/ lib\/json_(parse|write)\.c:(parse_text|pp_json_write|pp_json_to_string) / {
				take("json")
			}
			/ lib\/http\.c:(pp_http_multi_run|pp_http_multi_add) / { take("http") }
			/ store\/sqlite\.c:sqlite_[a-z_]+ / { take("store") }
			/ lib\/log\.c:pp_log / { take("log") }
			END {
				http = s["http"] - s["sign"]
				other = t - s["render"] - s["sign"] - s["json"] - http - s["store"] \
					- s["log"]
				printf "{\"total\":%s,\"render\":%d,\"sign\":%d,\"json\":%d,", t,
					s["render"], s["sign"], s["json"]
				printf "\"http\":%d,\"store\":%d,\"log\":%d,\"other\":%d}\n", http,
					s["store"], s["log"], other
			}'
	}
	serve_split=$(cg_split "$T/cg.serve")
	empty_split=$(cg_split "$T/cg.empty")
	base_total=0
	for pool in cloud-run ecs aci; do
		base_total=$((base_total + $(cg_split "$T/cg.base.$pool" | jq .total)))
	done
	emit "$(jq -nc --argjson s "$serve_split" --argjson e "$empty_split" --argjson b "$base_total" \
		--argjson n $((CPU_RUNS * 3)) \
		'($s | with_entries(.value = ((.value - ($e[.key] // 0)) / $n | round))) as $per
		 | {figure: "cpu", runs: $n, instructions_per_run: $per,
		    baseline_instructions_per_run: ($b / $n | round),
		    ratio: (($per.total / ($b / $n)) * 100 | round / 100)}')"
fi

if only micro; then
	note "micro: µs per render and per SigV4 signature"
	"$MICRO" >"$T/micro" || die "micro failed"
	while read -r line; do emit "$line"; done <"$T/micro"
fi

# ---- memory ----
if only memory; then
	vm() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # PID FIELD -> KiB
	note "memory: idle"
	cf=$(conf mem-idle)
	"$PUSHPOOL" serve -c "$cf" 2>"$T/mem-idle.log" &
	SERVE_PID=$!
	sleep 2
	idle_kib=$(vm "$SERVE_PID" VmHWM)
	stop_serve
	# The floor: the same binary that only prints its version (libraries mapped).
	floor_kib=$( (command time -f %M "$PUSHPOOL" --version >/dev/null) 2>&1 | tail -n 1)
	note "memory: $INFLIGHT runs in flight"
	mock_reset
	# Claims every 12.5 ms. The mix stays within the mock's quotas (Cloud Run:
	# 1,000 jobs per region, Modal: 4,096 sandboxes): a tenth Cloud Run, 30 %
	# Modal, the rest ECS. ACI is left out: its creates take 2 s each by the
	# operation protocol, which would make this phase minutes long.
	cf=$(conf mem-flight "poll_interval = 0.05")
	n_cr=$((INFLIGHT / 10)) n_modal=$((INFLIGHT * 3 / 10))
	n_ecs=$((INFLIGHT - n_cr - n_modal))
	"$PUSHPOOL" schedule -c "$cf" -p cloud-run --count "$n_cr" >/dev/null
	"$PUSHPOOL" schedule -c "$cf" -p modal --count "$n_modal" >/dev/null
	schedule_n "$cf" ecs "$n_ecs"
	serve_until_submitted mem-flight "$cf" "$INFLIGHT"
	flight_kib=$(vm "$SERVE_PID" VmHWM)
	stop_serve
	note "memory: $STORE_RUNS runs in the store (due tomorrow)"
	cf=$(conf mem-store)
	schedule_n "$cf" ecs "$STORE_RUNS" --in 1d
	"$PUSHPOOL" serve -c "$cf" 2>"$T/mem-store.log" &
	SERVE_PID=$!
	sleep 3
	store_kib=$(vm "$SERVE_PID" VmHWM)
	stop_serve
	emit "$(jq -nc --argjson idle "$idle_kib" --argjson floor "$floor_kib" \
		--argjson fl "$flight_kib" --argjson st "$store_kib" --argjson nf "$INFLIGHT" \
		--argjson ns "$STORE_RUNS" \
		'{figure: "memory", floor_kib: $floor, idle_kib: $idle,
		  idle_ratio: (($idle / $floor) * 100 | round / 100),
		  in_flight: $nf, in_flight_kib: $fl, in_flight_ratio: (($fl / $idle) * 100 | round / 100),
		  kib_per_run_in_flight: ((($fl - $idle) / $nf) * 100 | round / 100),
		  in_store: $ns, in_store_kib: $st, in_store_ratio: (($st / $idle) * 100 | round / 100)}')"
fi

# ---- curve: cost against runs in flight and runs stored ----
# What users size machines from (docs/performance.md, "How cost grows").
# Each point's ratio is against the curve's first point, measured in the
# same run: memory should grow linearly (KiB per run flat) and the claim
# should not grow with the history stored.
if only curve; then
	vm() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # PID FIELD -> KiB
	cf=$(conf curve-idle)
	"$PUSHPOOL" serve -c "$cf" 2>"$T/curve-idle.log" &
	SERVE_PID=$!
	sleep 2
	curve_idle=$(vm "$SERVE_PID" VmHWM)
	stop_serve
	# CPU of an idle serve over IDLE_SECONDS, read from the scheduler.
	cpu_window_ms() {
		a=$(awk '{ print $1 }' "/proc/$SERVE_PID/schedstat")
		sleep "$IDLE_SECONDS"
		b=$(awk '{ print $1 }' "/proc/$SERVE_PID/schedstat")
		echo $(((b - a) / 1000000))
	}
	IDLE_SECONDS=${BENCH_IDLE_SECONDS:-25}
	inflight_points=${BENCH_CURVE_INFLIGHT:-1000 10000 100000}
	most_in_flight=${inflight_points##* }
	first_rate= first_per_run= held_cpu=
	for n in $inflight_points; do
		# ECS alone: the mock has no quota on tasks, and one request per
		# run keeps the point about the dispatcher, not the cloud.
		note "curve: $n ecs runs in flight"
		mock_reset
		cf=$(conf "curve-$n" "poll_interval = 0.05")
		schedule_n "$cf" ecs "$n"
		serve_until_submitted "curve-$n" "$cf" "$n"
		kib=$(vm "$SERVE_PID" VmHWM)
		# The daemon holding the most runs, once they are all submitted:
		# what it spends on them while nothing happens (leases renewed,
		# cancel requests looked for), against an empty store below.
		if [ "$n" = "$most_in_flight" ] && [ "$IDLE_SECONDS" -gt 0 ]; then
			note "curve: idle serve holding $n runs in flight"
			held_cpu=$(cpu_window_ms)
		fi
		stop_serve
		rate=$(store_rate "curve-$n")
		per_run=$(jq -n --argjson k "$kib" --argjson i "$curve_idle" --argjson n "$n" \
			'(($k - $i) / $n * 100 | round) / 100')
		[ -n "$first_rate" ] || first_rate=$rate first_per_run=$per_run
		emit "$(jq -nc --argjson n "$n" --argjson rate "$rate" --argjson kib "$kib" \
			--argjson idle "$curve_idle" --argjson per "$per_run" \
			--argjson r0 "$first_rate" --argjson p0 "$first_per_run" \
			'{figure: "curve_in_flight", pool: "ecs", in_flight: $n, runs_per_s: $rate,
			  peak_rss_kib: $kib, idle_kib: $idle, kib_per_run: $per,
			  rate_ratio: (($rate / $r0) * 100 | round / 100),
			  kib_per_run_ratio: (if $p0 > 0 then (($per / $p0) * 100 | round / 100)
					      else null end)}')"
	done
	if [ -n "$held_cpu" ]; then
		note "curve: idle serve, empty store"
		cf=$(conf curve-empty "poll_interval = 0.05")
		serve_started curve-empty "$cf"
		empty=$(cpu_window_ms)
		stop_serve
		emit "$(jq -nc --argjson n "$most_in_flight" --argjson s "$IDLE_SECONDS" \
			--argjson held "$held_cpu" --argjson empty "$empty" \
			'{figure: "idle_in_flight", in_flight: $n, seconds: $s, cpu_ms: $held,
			  empty_cpu_ms: $empty,
			  core_pct: ($held / $s / 10 * 100 | round / 100),
			  ratio: (if $empty > 0 then ($held / $empty * 100 | round / 100)
				  else null end)}')"
	fi
	# Throughput with history: HISTORY_RUNS due ECS runs on an empty store
	# and on one holding BENCH_CURVE_HISTORY finished runs that pushpool
	# itself made (its own run ids, from `schedule`; three events each,
	# added by SQL as a run's life would leave them), empty, history,
	# history, empty. Rows keyed by random ids would land on a random
	# page each (docs/performance.md, step 19).
	hist=${BENCH_CURVE_HISTORY:-200000}
	if [ "$hist" -gt 0 ]; then
		note "curve: throughput with $hist finished runs stored"
		hcf=$(conf history-seed)
		schedule_n "$hcf" ecs "$hist"
		db history-seed "UPDATE runs SET state = 'SUCCEEDED';
			INSERT INTO run_events (run_id, ts_ms, state, message)
			SELECT id, created_ms + k.d, k.s, k.m FROM runs,
			  (SELECT 1 AS d, 'SUBMITTED' AS s, 'submitted (try 1)' AS m
			   UNION ALL SELECT 2, 'RUNNING', 'running'
			   UNION ALL SELECT 3, 'SUCCEEDED', 'exit code 0') k;
			PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
		hist_pass() { # STORED
			phase=$((phase + 1))
			cf=$(conf "hist$phase" "poll_interval = 0.05")
			[ "$1" -eq 0 ] || cp "$T/history-seed/pushpool.db" "$T/hist$phase/"
			schedule_n "$cf" ecs "$HISTORY_RUNS"
			since=$(ms_now)
			mock_reset
			serve_until_submitted "hist$phase" "$cf" $(($1 + HISTORY_RUNS))
			stop_serve
			pass_rate=$(store_rate "hist$phase" "$since") pass_req=null pass_own=
		}
		side_a() { hist_pass 0; }
		side_b() { hist_pass "$hist"; }
		ab_passes "curve: throughput with $hist finished runs stored"
		emit "$(history_figure curve_history "$hist" "$HISTORY_RUNS")"
	fi
	first_p50=
	for n in ${BENCH_CURVE_STORED:-10000 100000 1000000}; do
		# N finished runs across the four pools (the history a store
		# accumulates), then 1,000 due ecs runs claimed 10 at a time.
		note "curve: claim time with $n finished runs stored"
		cf=$(conf "stored-$n")
		"$PUSHPOOL" schedule -c "$cf" -p ecs --count 1000 >/dev/null
		db "stored-$n" "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k
				WHERE i < $n)
			INSERT INTO runs (id, pool, scheduled_ms, state, created_ms, updated_ms,
					  attempt, infra_id)
			SELECT printf('hist-%09d', i),
			       CASE i % 4 WHEN 0 THEN 'ecs' WHEN 1 THEN 'cloud-run' WHEN 2 THEN 'aci'
					  ELSE 'modal' END,
			       i, CASE i % 10 WHEN 0 THEN 'FAILED' ELSE 'SUCCEEDED' END, i, i, 1,
			       printf('infra-%d', i)
			FROM k"
		c=$("$CLAIM" "$T/stored-$n/pushpool.db" ecs 100 10) || die "claim bench failed"
		p50=$(printf '%s' "$c" | jq .p50_us)
		[ -n "$first_p50" ] || first_p50=$p50
		emit "$(printf '%s' "$c" | jq -c --argjson n "$n" --argjson p0 "$first_p50" \
			'{figure: "curve_claim", stored: $n, batch, rounds, p50_us, p99_us,
			  p50_ratio: ((.p50_us / $p0) * 100 | round / 100)}')"
		# Again with the pool under a concurrency limit, whose claim
		# counts the runs holding its slots (docs/performance.md, step
		# 44): the runs just claimed end, 1,000 more are due.
		db "stored-$n" "UPDATE runs SET state = 'SUCCEEDED', lease_owner = NULL
			WHERE state = 'SCHEDULED';
			INSERT INTO pool_settings (pool, concurrency_limit, paused)
			VALUES ('ecs', 1000000, 0)"
		"$PUSHPOOL" schedule -c "$cf" -p ecs --count 1000 >/dev/null
		c=$("$CLAIM" "$T/stored-$n/pushpool.db" ecs 100 10) || die "claim bench failed"
		emit "$(printf '%s' "$c" | jq -c --argjson n "$n" --argjson p "$p50" \
			'{figure: "curve_claim_limited", stored: $n, batch, rounds, p50_us, p99_us,
			  unlimited_p50_us: $p,
			  p50_ratio: ((.p50_us / $p) * 100 | round / 100)}')"
		db "stored-$n" "UPDATE runs SET state = 'SUCCEEDED', lease_owner = NULL
			WHERE state = 'SCHEDULED'"
		largest=$n
	done
	# An idle serve with metrics on counts the store's runs by state every
	# second: its CPU on the largest store, against the same on an empty
	# one (docs/performance.md, step 43), from once /metrics shows its
	# first count of the finished runs (SUCCEEDED as the store has them).
	idle_cpu_ms() { # NAME SUCCEEDED
		port=$(python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
		cfi=$(conf "$1" "metrics_listen = 127.0.0.1:$port")
		"$PUSHPOOL" serve -c "$cfi" 2>"$T/$1-idle.log" &
		SERVE_PID=$!
		deadline=$(($(date +%s) + 120))
		until [ "$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null |
			awk '$1 == "pushpool_runs{state=\"SUCCEEDED\"}" { print $2 }')" = "$2" ]; do
			kill -0 "$SERVE_PID" 2>/dev/null ||
				die "idle serve on $1 exited: $(tail -n 5 "$T/$1-idle.log")"
			[ "$(date +%s)" -lt "$deadline" ] ||
				die "idle serve on $1: /metrics never counted $2 SUCCEEDED runs"
			sleep 0.1
		done
		cpu=$(cpu_window_ms)
		stop_serve
		echo "$cpu"
	}
	if [ "$IDLE_SECONDS" -gt 0 ] && [ -n "${largest:-}" ]; then
		note "curve: idle serve with metrics, $largest finished runs stored"
		busy=$(idle_cpu_ms "stored-$largest" "$(db "stored-$largest" \
			"SELECT count(*) FROM runs WHERE state = 'SUCCEEDED'")")
		empty=$(idle_cpu_ms idle-empty 0)
		emit "$(jq -nc --argjson n "$largest" --argjson s "$IDLE_SECONDS" \
			--argjson busy "$busy" --argjson empty "$empty" \
			'{figure: "idle_metrics", stored: $n, seconds: $s, cpu_ms: $busy,
			  empty_cpu_ms: $empty,
			  core_pct: ($busy / $s / 10 * 100 | round / 100),
			  empty_core_pct: ($empty / $s / 10 * 100 | round / 100),
			  ratio: (if $empty > 0 then ($busy / $empty * 100 | round / 100)
				  else null end)}')"
	fi
fi

# ---- watch: what polling many running ECS runs costs (step 93) ----
# WATCH_RUNS ECS runs submitted, then polled at the pace of the built-in
# template (task_watch_poll_interval, 5 s) for WATCH_SECONDS: the
# DescribeTasks calls the mock answered against the tasks it was asked
# about (one call a task before step 93: the ratio's baseline), and
# serve's CPU a task polled. The bench's mock provisions a task for an
# hour, so every poll is one of a run still under way, and its first
# poll comes status_interval after its submission: 5 s here, the pace.
if only watch; then
	WATCH_RUNS=${BENCH_WATCH_RUNS:-10000}
	WATCH_SECONDS=${BENCH_WATCH_SECONDS:-20}
	note "watch: $WATCH_RUNS ecs runs polled for $WATCH_SECONDS s"
	mock_reset
	cf=$(conf watch "poll_interval = 0.05")
	sed -i 's/^status_interval = .*/status_interval = 5/' "$cf"
	schedule_n "$cf" ecs "$WATCH_RUNS"
	serve_until_submitted watch "$cf" "$WATCH_RUNS"
	described() { mock_stats | jq '.counters["ecs.described_tasks"] // 0'; }
	calls() { mock_stats | jq '.keyed.requests["ecs:DescribeTasks"] // 0'; }
	# Every run polled once.
	polled_once() { [ "$(described)" -ge "$WATCH_RUNS" ]; }
	until_deadline 120 0.5 polled_once || die "watch: runs not polled in 120 s"
	cpu() { awk '{ print $1 }' "/proc/$SERVE_PID/schedstat"; }
	c0=$(calls) d0=$(described) s0=$(cpu)
	sleep "$WATCH_SECONDS"
	c1=$(calls) d1=$(described) s1=$(cpu)
	stop_serve
	grep -q 'status check failed' "$T/watch.log" &&
		die "watch: status checks failed: $(grep -m 3 'status check failed' "$T/watch.log")"
	emit "$(jq -nc --argjson n "$WATCH_RUNS" --argjson s "$WATCH_SECONDS" \
		--argjson calls $((c1 - c0)) --argjson tasks $((d1 - d0)) \
		--argjson cpu_ns $((s1 - s0)) \
		'{figure: "watch", pool: "ecs", in_flight: $n, seconds: $s, calls: $calls,
		  tasks: $tasks, cpu_ms: ($cpu_ns / 1000000 | round),
		  cpu_us_per_task: (if $tasks > 0 then ($cpu_ns / 1000 / $tasks * 10 | round / 10)
				    else null end),
		  ratio: (if $tasks > 0 then ($calls / $tasks * 1000 | round / 1000) else null end)}')"
fi

# ---- latency: scheduled -> submitted at 1,000 runs/min ----
if only latency; then
	# Default claim cadence (poll_interval); status polls stay out of the way.
	n=$((LAT_SECONDS * 1000 / 60 / 4 * 4))
	note "latency: $n runs over $LAT_SECONDS s, the four pools taking turns"
	mock_reset
	cf=$(conf latency)
	for pool in cloud-run ecs aci modal; do
		"$PUSHPOOL" schedule -c "$cf" -p "$pool" --in 1d --count $((n / 4)) >/dev/null
	done
	# One run every 60 ms from 2 s on. Written into the store directly:
	# `schedule` takes one time per call, and $n calls would take longer than
	# the spacing.
	start=$(($(ms_now) + 2000))
	db latency "UPDATE runs SET scheduled_ms = $start + 60 * (4 * (o.k - 1) + o.p)
		FROM (SELECT id, row_number() OVER (PARTITION BY pool ORDER BY rowid) AS k,
			     CASE pool WHEN 'cloud-run' THEN 0 WHEN 'ecs' THEN 1 WHEN 'aci' THEN 2
				       ELSE 3 END AS p
		      FROM runs) AS o WHERE runs.id = o.id"
	serve_until_submitted latency "$cf" "$n"
	stop_serve
	# Baseline per pool: the mock's own time for one run's request chain (ACI
	# includes the provisioning polls), chains side by side as in the test.
	for pool in all cloud-run ecs aci modal; do
		db latency "SELECT e.ts_ms - r.scheduled_ms FROM runs r JOIN run_events e ON e.run_id = r.id
			WHERE e.state = 'SUBMITTED' AND ('$pool' = 'all' OR r.pool = '$pool')
			ORDER BY 1" >"$T/lat"
		chain=null
		if [ "$pool" != all ]; then
			mock_reset
			b=$(baseline_run "$pool" 10 10) || die "baseline $pool failed"
			chain=$(printf '%s' "$b" | jq '.seconds * 1000 * .concurrency / .runs')
		fi
		emit "$(jq -nc --arg pool "$pool" --argjson c "$chain" --argjson n "$(wc -l <"$T/lat")" \
			--argjson p50 "$(pct 50)" --argjson p99 "$(pct 99)" \
			'{figure: "latency", pool: $pool, runs: $n, rate_per_min: 1000,
			  p50_ms: $p50, p99_ms: $p99,
			  baseline_chain_ms: (if $c then ($c * 10 | round / 10) else null end),
			  p50_ratio: (if $c then (($p50 / $c) * 10 | round / 10) else null end),
			  p99_ratio: (if $c then (($p99 / $c) * 10 | round / 10) else null end)}')"
	done
fi

# ---- startup ----
if only startup; then
	avg_ms() { # COUNT CMD... -> mean wall ms
		k=$1
		shift
		t0=$(date +%s%N)
		j=0
		while [ $j -lt "$k" ]; do
			"$@" >/dev/null 2>&1 || true
			j=$((j + 1))
		done
		echo $((($(date +%s%N) - t0) / k / 1000))
	}
	note "startup"
	cf=$(conf startup)
	version_us=$(avg_ms 20 "$PUSHPOOL" --version)
	once_us=$(avg_ms 10 "$PUSHPOOL" once -c "$cf")
	floor_us=$(avg_ms 20 "$BASELINE")
	emit "$(jq -nc --argjson v "$version_us" --argjson o "$once_us" --argjson f "$floor_us" \
		'{figure: "startup", version_ms: ($v / 10 | round / 100),
		  empty_once_ms: ($o / 10 | round / 100),
		  baseline_ms: ($f / 10 | round / 100),
		  version_ratio: (($v / $f) * 10 | round / 10),
		  empty_once_ratio: (($o / $f) * 10 | round / 10)}')"
fi

# The PostgreSQL store's figures: mk/pg.mk's pg-bench (tests/bench/pg_like.sh)
# runs before this in `make bench`; each names when it was measured.
if [ -s "$BUILD/bench-pg.jsonl" ]; then cat "$BUILD/bench-pg.jsonl" >>"$R"; fi
jq -s --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg host "$(uname -srm)" \
	--argjson cpus "$(nproc)" --arg cmd "make bench" \
	'{date: $date, machine: {kernel: $host, cpus: $cpus}, command: $cmd, figures: .}' \
	"$R" >"$OUT"
sh "$(dirname "$0")/table.sh" "$OUT"
sh "$(dirname "$0")/charts.sh" "$OUT" "$BUILD"
echo "bench: wrote $OUT" >&2
