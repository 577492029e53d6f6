#!/bin/sh
# A token endpoint that echoes the request's form body in its error (as some
# do, in error_description) must not carry a secret out in any encoding:
# the Azure client secret and Google's refresh token (always "1//...") are
# sent percent-encoded, so redaction must know that form too (issue 18).
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
SRV=
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*"
	exit 1
}
cat >"$T/echo.py" <<'PY'
import http.server, json
class Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("latin-1")
        out = json.dumps({"error": "invalid_client",
                          "error_description": "bad request: " + body}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
python3 "$T/echo.py" >"$T/port" &
SRV=$!
i=0
until [ -s "$T/port" ]; do
	i=$((i + 1))
	[ $i -le 100 ] || fail "echo server did not start"
	sleep 0.1
done
P=$(cat "$T/port")
AZ_SECRET='Sec+ret/Value=1234 x'
REFRESH='1//0gRefreshTok3n-abcdefXYZ'
G_SECRET='GOCSPX-Cl13nt+S/ecret='
printf '{"type":"authorized_user","client_id":"cid.apps.googleusercontent.com","client_secret":"%s","refresh_token":"%s"}\n' \
	"$G_SECRET" "$REFRESH" >"$T/au.json"
chmod 600 "$T/au.json"
cat >"$T/c.conf" <<EOF
[dispatcher]
state_dir = $T
[credentials "az"]
type = azure
source = secret
tenant_id = 00000000-0000-0000-0000-000000000000
client_id = 11111111-1111-1111-1111-111111111111
client_secret = $AZ_SECRET
authority = http://127.0.0.1:$P
subscription_id = 00000000-0000-0000-0000-000000000000
[credentials "g"]
type = gcp
source = file
file = $T/au.json
token_uri = http://127.0.0.1:$P/token
EOF
for c in az g; do
	set +e
	"$PUSHPOOL" auth check "$c" -c "$T/c.conf" >"$T/$c.out" 2>&1
	rc=$?
	set -e
	[ $rc = 77 ] || fail "auth check $c exited $rc, want 77 (rejected): $(cat "$T/$c.out")"
	grep -q 'HTTP 401' "$T/$c.out" || fail "auth check $c does not say why: $(cat "$T/$c.out")"
done
# Every form each secret was sent in: raw, form-encoded (+ or %20 for a
# space, %2B, %2F, %3D in either case), JSON-escaped.
python3 - "$T/az.out" "$T/g.out" "$AZ_SECRET" "$REFRESH" "$G_SECRET" <<'PY'
import sys, urllib.parse
text = open(sys.argv[1]).read() + open(sys.argv[2]).read()
for secret in sys.argv[3:]:
    forms = {secret, urllib.parse.quote_plus(secret), urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret).lower(), secret.replace("/", "\\/")}
    for f in forms:
        if f in text:
            sys.exit("secret leaked as %r in: %s" % (f, text))
PY
echo "secret_echo.sh: an echoing token endpoint gets no secret out of auth check (Azure, Google)"
