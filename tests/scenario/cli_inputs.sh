#!/bin/sh
# Hostile and careless input to the commands around the run store (issue 18):
#   - schedule --count has a cap, and stops at its first failed write when
#     its output is gone (a closed pipe, `| head -1`, a full disk) instead
#     of inserting runs nobody sees;
#   - a corrupt store exits 65 from runs and schedule, as from once;
#   - invalid UTF-8 or NUL in a -v value is refused, naming the variable;
#   - a server's error message with newlines and ANSI escapes is printed
#     escaped by runs ls and runs show (no forged "SUCCEEDED" line);
#   - a row with an unknown state is quarantined (listed with its reason,
#     warned about once, never claimed) while its pool's other runs go on;
#   - run --timeout bounds the submission, against a server that never
#     answers, not only the following.
# The hostile endpoint is a small local server (python3).
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
SRV_PID=
cleanup() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && { wait "$SRV_PID" 2>/dev/null || :; }
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# /hang/...: read the request, never answer. Anything else: an ECS-style 400
# whose message tries to forge a line and clear the screen.
python3 - "$T/port" <<'PY' >"$T/srv.log" 2>&1 &
import http.server, json, socketserver, sys, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if self.path.startswith("/hang"):
            time.sleep(120)
            return
        body = json.dumps({"__type": "ClientException",
                           "message": "bad image\n00000000-0000-4000-8000-000000000000  ecs  SUCCEEDED\x1b[2J\x1b[31mred\r"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
SRV_PID=$!
i=0
while [ ! -s "$T/port" ]; do
	i=$((i + 1))
	[ $i -gt 400 ] && fail "hostile server did not start: $(cat "$T/srv.log")"
	sleep 0.05
done
PORT=$(cat "$T/port")

conf() { # conf FILE STATE_DIR
	cat >"$1" <<EOF
[dispatcher]
state_dir = $2
backoff_base_ms = 20
backoff_max_ms = 100
# The hostile server answers only what this test sends; a sweep's listing
# would wait out its budget there on every once.
sweep_interval = 0

[credentials "aws"]
type = aws
source = static
access_key_id = AKIDPUSHPOOLCLI
secret_access_key = cliSecretKeyForHostileInputTests000000
region = us-east-1

[pool "ecs"]
type = ecs:push
credentials = aws
endpoint = http://127.0.0.1:$PORT/err
job_variables = {"cluster": "default", "image": "repo/flows:1", "network_configuration": {"subnets": ["subnet-1"]}}

[pool "hang"]
type = ecs:push
credentials = aws
endpoint = http://127.0.0.1:$PORT/hang
job_variables = {"cluster": "default", "image": "repo/flows:1", "network_configuration": {"subnets": ["subnet-1"]}}
EOF
}
mkdir "$T/st"
conf "$T/c.conf" "$T/st"
pp() { "$PUSHPOOL" -c "$T/c.conf" "$@"; }
nruns() { pp runs ls | tail -n +2 | wc -l; }

# ---- schedule --count: a cap, and a failed write stops it -----------------
rc=0
pp schedule -p ecs --count 100000 --in 1d >/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 64 ] && grep -q 'from 1 to 10000' "$T/err" ||
	fail "--count 100000: exit $rc: $(cat "$T/err")"
[ "$(nruns)" = 0 ] || fail "--count 100000 inserted $(nruns) runs"
# A reader that is already gone: the pipe is made with its read end closed,
# so the first id's write fails (EPIPE) whatever the machine's load, and the
# one run inserted before it is all there is.
rc=0
python3 -c 'import os, sys
r, w = os.pipe()
os.close(r)
os.dup2(w, 1)
os.execv(sys.argv[1], sys.argv[1:])' "$PUSHPOOL" -c "$T/c.conf" \
	schedule -p ecs --count 10000 --in 1d 2>"$T/err" || rc=$?
[ "$rc" = 74 ] && [ "$(nruns)" = 1 ] &&
	grep -q 'stopped after 1 of 10000 runs: cannot write run id .*: Broken pipe (the runs inserted stay scheduled)' "$T/err" ||
	fail "schedule into a closed pipe: exit $rc, $(nruns) runs: $(cat "$T/err")"
# A full disk stops it the same way, at its first id.
rc=0
pp schedule -p ecs --count 10000 --in 1d >/dev/full 2>"$T/err" || rc=$?
[ "$rc" = 74 ] && [ "$(nruns)" = 2 ] && grep -q 'stopped after 1 of 10000 runs.*No space left on device' "$T/err" ||
	fail "schedule >/dev/full: exit $rc, $(nruns) runs: $(cat "$T/err")"
# `| head -n 1` leaves at its own pace, and schedule may run ahead of it
# meanwhile, but only by what the pipe and head's one read hold: 10,000 ids
# are 370 KB, far more, so schedule must block and then stop well short.
pp schedule -p ecs --count 10000 --in 1d 2>"$T/err" | head -n 1 >/dev/null
headed=$(($(nruns) - 2))
[ "$headed" -lt 10000 ] || fail "schedule went on after its reader left: $headed runs inserted"
grep -q 'cannot write run id.*the runs inserted stay scheduled' "$T/err" ||
	fail "schedule | head: no clear message: $(cat "$T/err")"
n=$(nruns)
echo "schedule: --count over 10000 refused; a closed pipe and a full disk stop it at its first id; | head -n 1 stopped after $headed runs"

# ---- -v values that are not text -----------------------------------------
for v in "$(printf 'bad=x\377y')" 'bad="x\u0000y"' 'bad=["ok", {"k": "\u0000"}]'; do
	for cmd in "schedule -p ecs" "render -p ecs" "run -p ecs"; do
		rc=0
		# shellcheck disable=SC2086
		pp $cmd -v "$v" >/dev/null 2>"$T/err" || rc=$?
		[ "$rc" = 65 ] && grep -q 'job variable "bad"' "$T/err" ||
			fail "$cmd -v '$v': exit $rc: $(cat "$T/err")"
	done
done
[ "$(nruns)" = "$n" ] || fail "a refused -v value was scheduled"
echo "-v: invalid UTF-8 and NUL refused by schedule, render and run (exit 65)"

# ---- a server's error printed escaped --------------------------------------
rm -rf "$T/st" && mkdir "$T/st"
id=$(pp schedule -p ecs)
rc=0
pp once >"$T/once.out" 2>"$T/once.err" || rc=$?
pp runs ls >"$T/ls"
[ "$(wc -l <"$T/ls")" = 2 ] || fail "runs ls printed $(wc -l <"$T/ls") lines for one run: $(cat "$T/ls")"
grep -q 'SUCCEEDED' "$T/ls" && ! grep -q '\\nSUCCEEDED\|\\n00000000' "$T/ls" &&
	fail "runs ls: a forged line: $(cat "$T/ls")"
grep -q "$(printf '\033')" "$T/ls" && fail "runs ls printed an escape character raw"
grep -q 'bad image\\n00000000' "$T/ls" && grep -q '\\x1b\[2J' "$T/ls" ||
	fail "runs ls does not show the error escaped: $(cat "$T/ls")"
pp runs show "$id" >"$T/show"
grep -q "$(printf '\033')" "$T/show" && fail "runs show printed an escape character raw"
grep -q '^00000000' "$T/show" && fail "runs show: a forged line: $(cat "$T/show")"
grep -q 'bad image\\n00000000' "$T/show" || fail "runs show: $(cat "$T/show")"
printf "%s\n" "runs ls/show: a server's newlines and escapes printed as \\n and \\x1b"

# ---- a row with an unknown state: quarantined, the others dispatched -------
rm -rf "$T/st" && mkdir "$T/st"
bad=$(pp schedule -p ecs --priority 9)
good=$(pp schedule -p ecs)
python3 - "$T/st/pushpool.db" "$bad" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("UPDATE runs SET state = 'PAUSED_BY_V9' WHERE id = ?", (sys.argv[2],)).rowcount == 1
db.commit()
PY
rc=0
pp runs ls >"$T/ls" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] && grep "$bad" "$T/ls" | grep -q 'QUARANTINED.*quarantined: unknown state "PAUSED_BY_V9"' ||
	fail "runs ls with an unknown state: exit $rc: $(cat "$T/ls" "$T/err")"
rc=0
pp once >"$T/once.out" 2>"$T/once.err" || rc=$?
[ "$(grep -c "run $bad quarantined: unknown state" "$T/once.err")" = 1 ] ||
	fail "once did not warn once about $bad: $(cat "$T/once.err")"
pp runs show "$good" | grep -q '^state: *FAILED' ||
	fail "the other run of the pool was not dispatched: $(pp runs show "$good")"
pp runs show "$bad" >"$T/show"
grep -q '^state: *QUARANTINED' "$T/show" && grep -q 'QUARANTINED *quarantined: unknown state' "$T/show" ||
	fail "runs show of the quarantined run: $(cat "$T/show")"
pp once >/dev/null 2>"$T/once.err" || :
grep -q quarantined "$T/once.err" && fail "the quarantine was reported twice: $(cat "$T/once.err")"
echo "unknown state: quarantined with its reason (warned once), the pool's other run dispatched"

# ---- a corrupt store: one exit status (65) everywhere ----------------------
mkdir "$T/bad"
head -c 8192 /dev/urandom >"$T/bad/pushpool.db"
conf "$T/bad.conf" "$T/bad"
for cmd in "runs ls" "schedule -p ecs" "once"; do
	rc=0
	# shellcheck disable=SC2086
	"$PUSHPOOL" -c "$T/bad.conf" $cmd >/dev/null 2>"$T/err" || rc=$?
	[ "$rc" = 65 ] && grep -q 'not a pushpool store or corrupt' "$T/err" ||
		fail "corrupt store: $cmd: exit $rc: $(cat "$T/err")"
done
echo "corrupt store: runs ls, schedule and once all exit 65"

# ---- run --timeout covers the submission -----------------------------------
start=$(date +%s)
rc=0
timeout -s KILL 60 "$PUSHPOOL" -c "$T/c.conf" run -p hang --timeout 2 >/dev/null 2>"$T/err" || rc=$?
took=$(($(date +%s) - start))
# 2 s, then up to 10 s replaying the submission to find what it created
# (nothing, here); the old build ran for 120 s.
[ "$rc" = 75 ] && [ "$took" -le 40 ] && grep -q 'timed out after 2 s' "$T/err" ||
	fail "run --timeout 2 against a silent server: exit $rc after ${took}s: $(cat "$T/err")"
echo "run --timeout 2: gave up on a silent server after ${took}s (exit 75)"
