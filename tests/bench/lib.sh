# Sourced by bench.sh and pair.sh (after they set BUILD, PUSHPOOL,
# BASELINE, CONC and T, and define die): starts one mock for every pass,
# on which remote jobs never finish, so a dispatcher only submits
# (status_interval is long, nothing is polled), and defines the helpers of
# a pass. SERVE_BIN [PUSHPOOL] is the binary serve_until_submitted runs.
# The mock's Prefect API wants this key (bench.sh's prefect section), as a
# server with auth would.
PF_KEY=pf-bench-key-0123456789
export PUSHPOOL_MOCK_PREFECT_KEY=$PF_KEY
MOCK_RUN_SECONDS=3600 MOCK_PROVISION_SECONDS=3600 DISPATCHER_EXTRA="status_interval = 600
max_in_flight = 1000000" . "$(dirname "$0")/../../tools/mock-env.sh"
sed -i "s/^max_submitting = .*/max_submitting = $CONC/" "$T/pushpool.conf"

# A config on its own store: conf NAME [EXTRA [dispatcher] LINES]
conf() {
	mkdir -p "$T/$1"
	sed "s|^state_dir = .*|state_dir = $T/$1|" "$T/pushpool.conf" |
		awk -v extra="${2:-}" '{ print } /^\[dispatcher\]/ && extra != "" { print extra }' \
			>"$T/$1.conf"
	echo "$T/$1.conf"
}
# A busy timeout: serve holds the write lock for a turn at a time.
db() { sqlite3 -cmd ".timeout 10000" "$T/$1/pushpool.db" "$2"; }
# `pushpool schedule -c CONF -p POOL --count N [ARGS]` for any N: schedule
# takes at most 10,000 runs per call.
schedule_n() { # CONF POOL N [ARGS...]
	c=$1 p=$2 left=$3
	shift 3
	while [ "$left" -gt 0 ]; do
		k=$((left > 10000 ? 10000 : left))
		"$PUSHPOOL" schedule -c "$c" -p "$p" --count "$k" "$@" >/dev/null
		left=$((left - k))
	done
}
mock_reset() { curl -fsS -X POST "$BASE/control/reset" >/dev/null; }
# The mock's realistic waits (docs/mock.md: a Cloud Run job reconciling 1 s
# before :run, a Modal image building 3 s, ...) are switched off: they bound
# both sides by the cloud's protocol, and the bench measures what pushpool
# adds on top of the requests themselves.
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"name":"*","on":false}' \
	"$BASE/control/behaviours" >/dev/null
mock_latency() {
	curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"latency_ms\":$1}" \
		"$BASE/control/faults" >/dev/null
}
# The mock's /control/stats, fetched once for the readers below that take
# it as their second argument (without it, each fetches its own).
mock_stats() { curl -fsS "$BASE/control/stats"; }
# Requests per run by api:action, without the once-per-pool calls (tokens,
# task definition registration) and /control itself; to one decimal, and
# only those that come to 0.1 or more, so a side's one resource group
# lookup or sign-in drops out.
per_run_requests() { # RUNS [STATS]
	{ if [ $# -gt 1 ]; then printf '%s' "$2"; else mock_stats; fi; } |
		jq -c --argjson n "$1" '.keyed.requests // {}
		| with_entries(select(.key | test("token|TaskDefinition|^control:") | not))
		| map_values(. / $n * 10 | round / 10) | with_entries(select(.value > 0))'
}
# Start `serve` on CONF and wait until WANT runs of store NAME are SUBMITTED.
# The wait reads serve's log (a count of "submitted as" lines: grep, well
# under a millisecond) and asks the store only once the log says all are
# in. It used to ask the store every 0.1 s, a sqlite3 process counting
# events each time: 5 to 20 ms of CPU a look on a 2,000-run store, and
# more with history, taken from the machine serve was measured on, while
# the baseline client it is set against has no such poll.
submitted() { # NAME: runs of store NAME with a SUBMITTED event
	# By event, not state: a run may have moved on (RUNNING, CRASHED) since.
	db "$1" "SELECT count(DISTINCT run_id) FROM run_events WHERE state = 'SUBMITTED'"
}
serve_until_submitted() { # NAME CONF WANT [WRAPPER...]
	name=$1 cf=$2 want=$3
	shift 3
	before=$(submitted "$name") # the history a store starts with
	"$@" "${SERVE_BIN:-$PUSHPOOL}" serve -c "$cf" 2>"$T/$name.log" &
	SERVE_PID=$!
	limit=$((300 + want / 100))
	deadline=$(($(date +%s) + limit))
	# The store has the last word (a submission retried logs twice), and
	# is asked once a second whatever the log says; the clock is read with
	# it, so that a look starts two processes (grep, sleep), not three.
	i=0
	while :; do
		i=$((i + 1))
		if [ "$(grep -c -F 'submitted as' "$T/$name.log")" -ge $((want - before)) ] ||
			[ $((i % 10)) = 0 ]; then
			[ "$(submitted "$name")" -ge "$want" ] && break
			[ "$(date +%s)" -lt "$deadline" ] ||
				die "serve on $name: not all $want runs submitted in $limit s"
		fi
		kill -0 "$SERVE_PID" 2>/dev/null ||
			die "serve on $name exited: $(tail -n 5 "$T/$name.log")"
		sleep 0.1
	done
}
# serve on CONF, returned once its loop has started (its "dispatcher …:
# store …" line; deadline 60 s) rather than after a fixed wait.
serve_started() { # NAME CONF
	"${SERVE_BIN:-$PUSHPOOL}" serve -c "$2" 2>"$T/$1.log" &
	SERVE_PID=$!
	deadline=$(($(date +%s) + 60))
	until grep -q '^[^ ]* INFO dispatcher .*: store ' "$T/$1.log"; do
		kill -0 "$SERVE_PID" 2>/dev/null || die "serve on $1 exited: $(tail -n 5 "$T/$1.log")"
		[ "$(date +%s)" -lt "$deadline" ] || die "serve on $1: not started in 60 s"
		sleep 0.1
	done
}
stop_serve() {
	kill -INT "$SERVE_PID"
	wait "$SERVE_PID" || die "serve exited $? after SIGINT"
	SERVE_PID=
}
# Runs/s from the store: first claim (SUBMITTING) to last SUBMITTED event,
# of the events from SINCE_MS on (a store with history holds older ones).
store_rate() { # NAME [SINCE_MS]
	db "$1" "SELECT round(count(DISTINCT run_id) * 1000.0 /
		(max(CASE WHEN state = 'SUBMITTED' THEN ts_ms END) -
		 min(CASE WHEN state = 'SUBMITTING' THEN ts_ms END)), 2)
		FROM run_events WHERE state IN ('SUBMITTING', 'SUBMITTED')
		AND ts_ms >= ${2:-0}"
}

GCP_TOKEN=$(curl -fsS -H 'Metadata-Flavor: Google' \
	"$BASE/computeMetadata/v1/instance/service-accounts/default/token" | jq -r .access_token)
AZ_TOKEN=$(curl -fsS -X POST "$BASE/azure/demo-tenant/oauth2/v2.0/token" \
	-d grant_type=client_credentials -d "client_id=$AZ_CLIENT" -d "client_secret=$AZ_SECRET" \
	-d scope=https://management.azure.com/.default | jq -r .access_token)
api_url() { # POOL -> where the baseline client sends that pool's requests
	if [ "$1" = modal ]; then echo "$MODAL"; else echo "$BASE"; fi
}
baseline_run() { # POOL RUNS CONCURRENCY [OPTIONS: baseline's, one word each, as one argument]
	BENCH_BEARER=$([ "$1" = aci ] && echo "$AZ_TOKEN" || echo "$GCP_TOKEN") \
	BENCH_AWS_KEY="$AKID:$AWS_SECRET" BENCH_MODAL_TOKEN=ak-demo:as-demo-secret \
		${BASELINE_WRAP:-} "$BASELINE" "$1" "$(api_url "$1")" "$2" "$3" ${4:-}
}
# Runs/s at the mock: RUNS over the time from the first to the last answer
# of the kinds of request made at least once every two runs (request_times;
# the once-per-pool calls, tokens and task definitions, fall out). Both
# sides of a throughput figure are measured by this one clock over the
# same part of their work: the baseline client registers its task
# definition and signs in before its own timer starts, while the
# dispatcher's store window (first SUBMITTING to last SUBMITTED) also
# holds serve's first claim, its task definition and its tokens
# (docs/performance.md, step 39).
mock_rate() { # RUNS [STATS]
	{ if [ $# -gt 1 ]; then printf '%s' "$2"; else mock_stats; fi; } |
		jq --argjson n "$1" '.keyed.requests as $count
		| [.request_times | to_entries[] | select($count[.key] >= $n / 2) | .value]
		| if length == 0 then 0 else
		  ((map(.[1]) | max) - (map(.[0]) | min)) as $w
		  | if $w > 0 then $n / $w * 100 | round / 100 else 0 end end'
}
