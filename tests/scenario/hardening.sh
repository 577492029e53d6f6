#!/bin/sh
# Secrets stay in the process: pushpool runs with no core dumps
# (RLIMIT_CORE 0) and not dumpable, so neither a crash nor another process
# of the same user (ptrace, /proc/PID/environ or mem) can read its memory;
# the systemd unit says LimitCORE=0 too.
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
	exit 1
}
chmod 0777 "$T"
printf '[dispatcher]\nstate_dir = %s\n' "$T" >"$T/c.conf"
chmod 0644 "$T/c.conf"
# As an unprivileged user when we are root, so that the same-user rule is
# what is tested (root may read any process).
as_user=
[ "$(id -u)" = 0 ] && as_user="setpriv --reuid=nobody --regid=nogroup --clear-groups"
$as_user env PP_TEST_MARK=visible-if-dumpable "$PUSHPOOL" serve -c "$T/c.conf" 2>"$T/serve.log" &
PID=$!
i=0
until [ -f "$T/pushpool.db" ]; do
	i=$((i + 1))
	[ $i -le 300 ] || fail "serve did not start: $(cat "$T/serve.log")"
	sleep 0.1
done
grep -q '^Max core file size *0 *0 ' "/proc/$PID/limits" ||
	fail "core dumps allowed: $(grep core "/proc/$PID/limits")"
if [ -n "$as_user" ]; then
	if $as_user cat "/proc/$PID/environ" >"$T/environ" 2>/dev/null; then
		fail "another process of the same user read serve's environment"
	fi
fi
grep -q '^LimitCORE=0$' deploy/systemd/pushpool.service || fail "pushpool.service lacks LimitCORE=0"
echo "hardening.sh: no core dumps, not readable by the same user, unit sets LimitCORE=0"
