#!/bin/sh
# `pushpool serve` under a systemd-like supervisor: with NOTIFY_SOCKET set
# (an abstract socket, as systemd uses) and WATCHDOG_USEC armed, it sends
# READY=1 once started, WATCHDOG=1 keep-alives, RELOADING=1 then READY=1
# around SIGHUP, and STOPPING=1 on SIGTERM, then exits 0.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
W=$(mktemp -d)
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*"
	echo "== datagrams"; cat "$W/got" 2>/dev/null || true
	echo "== serve log"; cat "$W/serve.log" 2>/dev/null || true
	exit 1
}
wait_for() { # SECONDS CONDITION...
	limit=$1; shift
	i=0
	while ! "$@"; do
		i=$((i + 1))
		[ $i -gt $((limit * 10)) ] && return 1
		sleep 0.1
	done
}

# The supervisor's end: print each datagram on one line, \n as '|'.
SOCK="@pushpool-notify-test-$$"
python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1][1:])
open(sys.argv[2], "w").close()
while True:
    print(s.recv(4096).decode().replace("\n", "|"), flush=True)
' "$SOCK" "$W/listening" >"$W/got" &
PIDS="$PIDS $!"
wait_for 10 test -f "$W/listening" || fail "datagram listener did not start"

mkdir -p "$W/state"
printf '[dispatcher]\nstate_dir = %s/state\npoll_interval = 0.2\n' "$W" >"$W/pushpool.conf"
NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=400000 "$PUSHPOOL" serve -c "$W/pushpool.conf" 2>"$W/serve.log" &
SERVE=$!
PIDS="$PIDS $SERVE"

has() { grep -q "$1" "$W/got"; }
wait_for 10 has '^READY=1' || fail "no READY=1 after startup"
# Period 400 ms: keep-alives every 200 ms. Wait for three of them rather
# than count them over a fixed second, which a busy machine can stretch.
watchdogs() { [ "$(grep -c '^WATCHDOG=1$' "$W/got" || true)" -ge 3 ]; }
wait_for 30 watchdogs || fail "expected >= 3 WATCHDOG=1, got $(grep -c '^WATCHDOG=1$' "$W/got" || true)"
n=$(grep -c '^WATCHDOG=1$' "$W/got" || true)

kill -HUP "$SERVE"
wait_for 10 has '^RELOADING=1|MONOTONIC_USEC=[0-9]*|' || fail "no RELOADING=1 on SIGHUP"
wait_for 10 sh -c "grep -v WATCHDOG '$W/got' | tail -n 1 | grep -q '^READY=1'" ||
	fail "no READY=1 after the reload"

kill -TERM "$SERVE"
rc=0
wait "$SERVE" || rc=$?
[ "$rc" -eq 0 ] || fail "serve exited $rc on SIGTERM"
wait_for 5 has '^STOPPING=1' || fail "no STOPPING=1 on SIGTERM"

# Order as a supervisor sees it, keep-alives aside.
order=$(grep -v '^WATCHDOG' "$W/got" | cut -d'|' -f1 | tr '\n' ' ')
[ "$order" = "READY=1 RELOADING=1 READY=1 STOPPING=1 " ] || fail "state order: $order"

# Without NOTIFY_SOCKET nothing is sent and serve runs the same.
: >"$W/got"
"$PUSHPOOL" serve -c "$W/pushpool.conf" 2>"$W/plain.log" &
PLAIN=$!
# Running: it has opened its store (its first log line).
wait_for 30 grep -qs 'store ' "$W/plain.log" || fail "serve without NOTIFY_SOCKET did not start"
kill -TERM "$PLAIN"
rc=0
wait "$PLAIN" || rc=$?
[ "$rc" -eq 0 ] || fail "serve without NOTIFY_SOCKET exited $rc"
[ ! -s "$W/got" ] || fail "datagrams sent without NOTIFY_SOCKET"
echo "notify: READY, WATCHDOG x$n, RELOADING/READY, STOPPING in order"
