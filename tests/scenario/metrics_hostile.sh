#!/bin/sh
# The /healthz and /metrics server under hostile or careless clients
# (docs/reliability.md, hostile inputs): idle connections do not starve the
# probes, a flood of connections leaves stderr as JSON log lines (MHD's own
# messages go through our rate-limited log), and a port already in use is
# reported with its number and the system's reason.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*"
	[ -f "$T/serve.log" ] && tail -n 20 "$T/serve.log"
	exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
printf '[dispatcher]\nstate_dir = %s\nmetrics_listen = 127.0.0.1:%s\nlog_format = json\n' \
	"$T" "$PORT" >"$T/c.conf"
"$PUSHPOOL" serve -c "$T/c.conf" 2>"$T/serve.log" &
PID=$!
i=0
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz"; do
	i=$((i + 1))
	[ $i -le 300 ] || fail "serve's /healthz never answered"
	kill -0 "$PID" 2>/dev/null || fail "serve exited"
	sleep 0.1
done

# Hold N idle connections open, then probe; print the probe's HTTP status.
probe_with_idle() {
	python3 - "$PORT" "$1" <<'PY'
import resource, socket, subprocess, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 256)), hard))
held = []
for _ in range(n):
    s = socket.socket()
    s.connect(("127.0.0.1", port))
    held.append(s)
r = subprocess.run(["curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}",
                    "http://127.0.0.1:%d/healthz" % port], capture_output=True, text=True)
print(r.stdout)
for s in held:
    s.close()
PY
}
# 70 idle connections once made every probe fail (the cap was 64).
code=$(probe_with_idle 70)
[ "$code" = 200 ] || fail "/healthz with 70 idle connections answered '$code', want 200"
code=$(probe_with_idle 300)
[ "$code" = 200 ] || fail "/healthz with 300 idle connections answered '$code', want 200"

# A flood past the cap: connections are refused, and stderr holds only
# JSON lines, a bounded number of them.
probe_with_idle 1500 >/dev/null
i=0
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz"; do
	i=$((i + 1))
	[ $i -le 600 ] || fail "/healthz did not recover after the flood"
	sleep 0.1
done
python3 - "$T/serve.log" <<'PY' || fail "serve's stderr is not JSON lines after a connection flood"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
for l in lines:
    json.loads(l)
assert len(lines) < 50, "%d log lines" % len(lines)
PY

# Port in use: the message names the port and the reason.
set +e
"$PUSHPOOL" serve -c "$T/c.conf" >"$T/out" 2>"$T/err"
rc=$?
set -e
[ $rc = 74 ] || fail "serve on a busy port exited $rc, want 74: $(cat "$T/err")"
grep -q "port $PORT: Address already in use" "$T/err" || fail "busy port message: $(cat "$T/err")"
grep -q "port 0" "$T/err" && fail "busy port message names port 0: $(cat "$T/err")"
echo "metrics_hostile.sh: probes pass with 70 and 300 idle connections, JSON log after a flood, busy port named"
