#!/bin/sh
# The main job on the embedded default: start `pushpool mock`, schedule runs
# across all four pool types in the embedded SQLite store, dispatch them with
# `pushpool once --wait`, list them; then apply a small prefect.yaml with a
# scheduled deployment, show it with its next runs and run it with
# `deployment run --watch` under `serve`; stop the mock. Exits non-zero
# unless every run SUCCEEDED. RUNS (per pool, default 2) and KEEP_DIR tune
# it; the dispatch scenario test reuses it.
set -eu
PUSHPOOL=${1:-build/pushpool}
RUNS=${RUNS:-2}
T=${KEEP_DIR:-$(mktemp -d)}
mkdir -p "$T"
MOCK_PID=
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	[ -n "${KEEP_DIR:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM

. "$(dirname "$0")/mock-env.sh"


echo "== scheduling $RUNS run(s) in each of 4 pools"
for pool in cloud-run ecs aci modal; do
	"$PUSHPOOL" schedule -c "$T/pushpool.conf" -p "$pool" --count "$RUNS" --name "demo-$pool" >/dev/null
done
# Optional fault injection (one JSON object per line), used by the tests.
if [ -n "${MOCK_FAULTS:-}" ]; then
	printf '%s\n' "$MOCK_FAULTS" | while read -r f; do
		[ -n "$f" ] && curl -fsS -X POST -H 'Content-Type: application/json' -d "$f" \
			"$BASE/control/faults" >/dev/null
	done
fi
echo "== pushpool once --wait"
rc=0
"$PUSHPOOL" once -c "$T/pushpool.conf" --wait --timeout 300 2>"$T/once.log" || rc=$?
echo "== pushpool runs ls"
"$PUSHPOOL" runs -c "$T/pushpool.conf" ls
total=$((RUNS * 4))
[ -n "${KEEP_DIR:-}" ] && curl -fsS "$BASE/control/stats" >"$T/stats.json"
ok=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls --state SUCCEEDED | grep -c -- '-' || true)
if [ "$rc" -ne 0 ] || [ "$ok" -ne "$total" ]; then
	echo "demo: once exited $rc; $ok of $total runs SUCCEEDED" >&2
	tail -n 30 "$T/once.log" >&2
	exit 1
fi
echo "== all $total runs SUCCEEDED"

echo "== pushpool deploy --file prefect.yaml"
cat >"$T/prefect.yaml" <<'YAML'
deployments:
  - name: hello-daily
    description: Says hello every morning
    parameters: {who: world}
    work_pool:
      name: modal
    schedules:
      - cron: "0 7 * * *"
        timezone: Europe/Berlin
YAML
"$PUSHPOOL" deploy -c "$T/pushpool.conf" --file "$T/prefect.yaml"
echo "== pushpool deployment show hello-daily"
"$PUSHPOOL" deployment -c "$T/pushpool.conf" show hello-daily
echo "== pushpool deployment run hello-daily -p who=demo --watch (under serve)"
"$PUSHPOOL" serve -c "$T/pushpool.conf" 2>"$T/serve.log" &
SERVE_PID=$!
if ! "$PUSHPOOL" deployment -c "$T/pushpool.conf" run hello-daily -p who=demo --watch \
	--timeout 120; then
	echo "demo: the deployment's run did not succeed" >&2
	tail -n 30 "$T/serve.log" >&2
	exit 1
fi
kill "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=
echo "== the deployment's run SUCCEEDED"
