#!/bin/sh
# Runs google_auth.py (python3-google-auth) against `pushpool mock`.
# Usage: sh tests/interop/google_auth.sh PUSHPOOL_BINARY
set -eu
PUSHPOOL=${1:-${PUSHPOOL:?usage: google_auth.sh PUSHPOOL_BINARY}}
PY=/usr/bin/python3
if ! "$PY" -c 'import google.auth, google.auth.transport.requests' 2>/dev/null; then
	echo "skip: no python3-google-auth"
	exit 0
fi
T=$(mktemp -d)
MOCK_PID=
cleanup() {
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
sa() { # KEYFILE KID OUT
	openssl genrsa -out "$1" 2048 2>/dev/null
	pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$1")
	cat >"$3" <<EOS
{"type": "service_account", "project_id": "interop", "private_key_id": "$2",
 "private_key": "$pem", "client_email": "$2@interop.iam.gserviceaccount.com",
 "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}
EOS
}
sa "$T/k1.pem" known "$T/sa.json"
sa "$T/k2.pem" stranger "$T/other.json"
"$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" --gcp-key "$T/sa.json" \
	>"$T/mock.log" 2>&1 &
MOCK_PID=$!
i=0
while ! grep -q '^url=' "$T/ports" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 100 ] && fail "mock did not start: $(cat "$T/mock.log")"
	sleep 0.05
done
"$PY" "$(dirname "$0")/google_auth.py" "$(sed -n 's/^url=//p' "$T/ports")" "$T/sa.json" "$T/other.json"
