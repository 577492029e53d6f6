#!/bin/sh
# The sweeper (dispatcher/sweep.c, issue 18): objects carrying pushpool's
# run label and this store's store label, whose run is unknown to the store
# (or finished), are removed once older than the grace (10 minutes);
# everything else stays. Planted on the mock for each cloud (Cloud Run jobs,
# ACI groups, ECS tasks, Modal sandboxes):
#   orphan    our store, run unknown, created 15 minutes ago   -> removed
#   young     our store, run unknown, created just now          -> kept (grace)
#   live      our store, a run scheduled in the store, old      -> kept
#   other     another store's id, run unknown here, old        -> kept
#   nostore   run label but no store label (an older pushpool)  -> kept
#   foreign   no label at all, old                              -> kept
# `serve` sweeps every sweep_interval and reports in /metrics; `once` sweeps
# at its end.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
MOCK_PID=
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
DISPATCHER_EXTRA="sweep_interval = 1"
. "$(dirname "$0")/../../tools/mock-env.sh"

stats() { curl -fsS "$BASE/control/stats" | tr -d ' \n'; }
stat() {
	stats | grep -o "\"$1\":[0-9]*" | head -n 1 | sed 's/.*://' | grep . || echo 0
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
C="$T/pushpool.conf"
JOBS=projects/demo-proj/locations/europe-west1/jobs
GROUPS=/subscriptions/$SUB/resourceGroups/rg-flows/providers/Microsoft.ContainerInstance/containerGroups
UNKNOWN=0b5e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b
OTHER_STORE=5d1c2b3a-4e5f-4a6b-9c7d-8e9f0a1b2c3d
STORE=$("$PUSHPOOL" store id -c "$C" 2>"$T/err") || fail "store id: $(cat "$T/err")"
echo "$STORE" | grep -Eq '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' ||
	fail "store id '$STORE' is not a UUID"
[ "$("$PUSHPOOL" store id -c "$C")" = "$STORE" ] || fail "the store id changed"

plant() { # API BODY
	curl -fsS -X POST -H 'Content-Type: application/json' -d "$2" "$BASE/$1/control/orphan" \
		>/dev/null || fail "plant on $1: $2"
}
# Runs that stay SCHEDULED: their objects belong to live runs.
for p in cloud-run aci ecs modal; do
	"$PUSHPOOL" schedule -c "$C" -p $p --at 2099-01-01T00:00:00Z >"$T/id.$p" 2>"$T/err" ||
		fail "schedule $p: $(cat "$T/err")"
done
LIVE_CR=$(cat "$T/id.cloud-run")
LIVE_ACI=$(cat "$T/id.aci")
LIVE_ECS=$(cat "$T/id.ecs")
LIVE_MODAL=$(cat "$T/id.modal")

# plant_all API KEY PREFIX LIVE_RUN [EXTRA]: the six kinds on one cloud; the
# object's name is PREFIX followed by its kind.
plant_all() {
	for kind in orphan young live other nostore foreign; do
		labels=",\"run_id\":\"$UNKNOWN\",\"store_id\":\"$STORE\""
		age=900
		case $kind in
		young) age=0 ;;
		live) labels=",\"run_id\":\"$4\",\"store_id\":\"$STORE\"" ;;
		other) labels=",\"run_id\":\"$UNKNOWN\",\"store_id\":\"$OTHER_STORE\"" ;;
		nostore) labels=",\"run_id\":\"$UNKNOWN\"" ;;
		foreign) labels= ;;
		esac
		plant "$1" "{\"$2\":\"$3$kind\"$labels,\"age_seconds\":$age${5:-}}"
	done
}
plant_all google job "$JOBS/pp-" "$LIVE_CR"
plant_all azure id "$GROUPS/pp-" "$LIVE_ACI"
# (an ECS task's ARN is the mock's choice: its kind goes in a note)
plant_all aws note "" "$LIVE_ECS" ',"region":"us-east-1","cluster":"default"'
plant_all modal name "sb-" "$LIVE_MODAL"
for live in live_jobs live_container_groups live_tasks live_modal_sandboxes; do
	[ "$(stat $live)" -eq 6 ] || fail "planting: $live: $(stats)"
done

# serve sweeps one interval after it starts, and every interval after that:
# the kept objects stay however often it looks.
PORT=$(free_port)
sed "/^\[dispatcher\]/a metrics_listen = 127.0.0.1:$PORT" "$C" >"$T/serve.conf"
"$PUSHPOOL" serve -c "$T/serve.conf" >"$T/serve.out" 2>"$T/serve.err" &
SERVE_PID=$!
i=0
until [ "$(stat live_jobs)" -eq 5 ] && [ "$(stat live_container_groups)" -eq 5 ] &&
	[ "$(stat live_tasks)" -eq 5 ] && [ "$(stat live_modal_sandboxes)" -eq 5 ] &&
	curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null >"$T/metrics" &&
	grep -q 'pushpool_swept_objects_total{pool="aci"} 1' "$T/metrics" &&
	grep -q 'pushpool_swept_objects_total{pool="cloud-run"} 1' "$T/metrics" &&
	grep -q 'pushpool_swept_objects_total{pool="ecs"} 1' "$T/metrics" &&
	grep -q 'pushpool_swept_objects_total{pool="modal"} 1' "$T/metrics"; do
	i=$((i + 1))
	[ $i -le 600 ] || fail "serve did not sweep the orphans: $(stats) $(cat "$T/serve.err")"
	sleep 0.1
done
grep -q '^# HELP pushpool_swept_objects_total ' "$T/metrics" || fail "no HELP line: $(cat "$T/metrics")"
grep -q "swept $JOBS/pp-orphan: run $UNKNOWN is unknown to the store" "$T/serve.err" ||
	fail "no log line for the Cloud Run orphan: $(cat "$T/serve.err")"
# (the log redacts the subscription id: the Azure credential registers it)
grep -q "containerGroups/pp-orphan: run $UNKNOWN is unknown to the store" "$T/serve.err" ||
	fail "no log line for the ACI orphan: $(cat "$T/serve.err")"
grep -q "swept arn:aws:ecs:us-east-1:[0-9]*:task/default/[0-9a-f]*: run $UNKNOWN is unknown" \
	"$T/serve.err" || fail "no log line for the ECS orphan: $(cat "$T/serve.err")"
grep -q "swept sb-[0-9a-zA-Z]*: run $UNKNOWN is unknown to the store" "$T/serve.err" ||
	fail "no log line for the Modal orphan: $(cat "$T/serve.err")"
[ "$(grep -c 'swept ' "$T/serve.err")" -eq 4 ] || fail "swept more: $(cat "$T/serve.err")"
# Objects with a run label but no store label are reported, not touched.
grep -q "pool cloud-run: sweep: 1 object(s) carry a run label but no store label" \
	"$T/serve.err" || fail "the unlabelled object was not reported: $(cat "$T/serve.err")"
kill "$SERVE_PID"
wait "$SERVE_PID" || true
SERVE_PID=

# Which object went, per cloud: the orphan, never the others.
for live in live_jobs live_container_groups live_tasks live_modal_sandboxes; do
	[ "$(stat $live)" -eq 5 ] || fail "after serve: $live: $(stats)"
done

# once sweeps at its end: a finished run's job goes too.
"$PUSHPOOL" runs -c "$C" cancel "$LIVE_CR" >/dev/null 2>"$T/err" || fail "cancel: $(cat "$T/err")"
"$PUSHPOOL" runs -c "$C" cancel "$LIVE_ECS" >/dev/null 2>"$T/err" || fail "cancel: $(cat "$T/err")"
timeout 120 "$PUSHPOOL" once -c "$C" >"$T/once.out" 2>"$T/once.err" ||
	fail "once: $(cat "$T/once.out" "$T/once.err")"
grep -q "swept $JOBS/pp-live: run $LIVE_CR is CANCELLED" "$T/once.err" ||
	fail "once did not sweep the cancelled run's job: $(cat "$T/once.err")"
grep -q "run $LIVE_ECS is CANCELLED" "$T/once.err" ||
	fail "once did not sweep the cancelled run's task: $(cat "$T/once.err")"
[ "$(stat live_jobs)" -eq 4 ] && [ "$(stat live_container_groups)" -eq 5 ] &&
	[ "$(stat live_tasks)" -eq 4 ] && [ "$(stat live_modal_sandboxes)" -eq 5 ] ||
	fail "after once: $(stats)"
echo "ok: orphans swept on four clouds (serve and once); young, live, other stores', unlabelled and foreign objects kept"
