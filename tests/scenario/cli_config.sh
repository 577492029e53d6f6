#!/bin/sh
# Careless configurations (issue 18), end to end through the binary:
#   - a relative SQLite store is the configuration file's, so schedule, runs
#     and once run from different directories share one store;
#   - a NUL byte is reported as one, an over-long path or environment value
#     as a length error (exit 78), not "line longer" or "out of memory";
#   - check refuses a metrics_listen that serve would refuse;
#   - plain http:// to a non-loopback host is a warning, check still exit 0;
#   - a ca_file that cannot be read, or holds no PEM certificate, fails check;
#     one that holds a private authority is what `once` trusts;
#   - a store password in the URL's query (?password=, &sslpassword=) is
#     redacted from check --print and from the store's errors.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
mkdir -p "$T/etc" "$T/a" "$T/b" "$T/state"
cat >"$T/etc/pushpool.conf" <<EOF
[dispatcher]
state_dir = $T/state

[store]
url = sqlite:runs.db

[pool "modal"]
type = modal:push
EOF

# ---- one store, whatever the working directory ----------------------------
id=$(cd "$T/a" && "$PUSHPOOL" -c ../etc/pushpool.conf schedule -p modal --in 1d)
[ -f "$T/etc/runs.db" ] || fail "the store is not beside the configuration: $(find "$T" -name '*.db')"
[ ! -e "$T/a/runs.db" ] || fail "schedule created a store in its working directory"
(cd "$T/b" && "$PUSHPOOL" -c "$T/etc/pushpool.conf" runs ls) >"$T/ls"
grep -q "$id" "$T/ls" || fail "runs ls from another directory does not see $id: $(cat "$T/ls")"
[ ! -e "$T/b/runs.db" ] || fail "runs ls created a store in its working directory"
echo "store: sqlite:runs.db is $T/etc/runs.db from every directory"

# ---- a NUL byte, over-long values ----------------------------------------
printf '[dispatcher]\nlog_level = in\000fo\n' >"$T/nul.conf"
rc=0
"$PUSHPOOL" -c "$T/nul.conf" check >/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 78 ] && grep -q "nul.conf:2: NUL byte in the configuration" "$T/err" ||
	fail "NUL byte: exit $rc: $(cat "$T/err")"
long=$(head -c 5000 /dev/zero | tr '\0' a)
printf '[dispatcher]\nstate_dir = /%s\n' "$long" >"$T/long.conf"
rc=0
"$PUSHPOOL" -c "$T/long.conf" check >/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 78 ] && grep -q "state_dir: the path is 5001 bytes, over the 960-byte limit" "$T/err" ||
	fail "long state_dir: exit $rc: $(head -c 300 "$T/err")"
rc=0
PUSHPOOL_POOL_MODAL_JOB_VARIABLES="{\"env\": {\"A\": \"$(head -c 100000 /dev/zero | tr '\0' a)\"}}" \
	"$PUSHPOOL" -c "$T/etc/pushpool.conf" check >/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 78 ] && grep -q "PUSHPOOL_POOL_MODAL_JOB_VARIABLES: the value is 100018 bytes, over the 65536-byte limit" "$T/err" ||
	fail "long environment value: exit $rc: $(head -c 300 "$T/err")"
echo "config: NUL byte and over-long values named (exit 78)"

# ---- metrics_listen: check refuses what serve refuses ---------------------
for l in 127.0.0.1:99999 :+80 localhost:9464; do
	rc=0
	PUSHPOOL_DISPATCHER_METRICS_LISTEN=$l "$PUSHPOOL" -c "$T/etc/pushpool.conf" check \
		>/dev/null 2>"$T/err" || rc=$?
	[ "$rc" = 78 ] && grep -q "metrics_listen \"$l\"" "$T/err" ||
		fail "check metrics_listen=$l: exit $rc: $(cat "$T/err")"
	rc=0
	PUSHPOOL_DISPATCHER_METRICS_LISTEN=$l timeout -s KILL 30 "$PUSHPOOL" \
		-c "$T/etc/pushpool.conf" serve >/dev/null 2>"$T/err" || rc=$?
	[ "$rc" = 78 ] || fail "serve metrics_listen=$l: exit $rc: $(cat "$T/err")"
done
echo "metrics_listen: check and serve refuse the same values (exit 78)"

# ---- plain http to another host: a warning, exit 0 -------------------------
rc=0
PUSHPOOL_POOL_MODAL_ENDPOINT=http://10.11.12.13:8080/api \
	"$PUSHPOOL" -c "$T/etc/pushpool.conf" check >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] && grep -q 'warning: \[pool "modal"\] endpoint: plain http:// to 10.11.12.13' "$T/err" ||
	fail "plain http endpoint: exit $rc: $(cat "$T/out" "$T/err")"
rc=0
PUSHPOOL_POOL_MODAL_ENDPOINT=http://127.0.0.1:8080/api \
	"$PUSHPOOL" -c "$T/etc/pushpool.conf" check >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] && ! grep -q warning "$T/err" || fail "loopback endpoint warned: $(cat "$T/err")"
echo "check: plain http:// to 10.11.12.13 warned, exit 0; loopback not warned"

# ---- ca_file: a readable PEM bundle, or check says why -----------------------
printf 'not a certificate\n' >"$T/not-pem.txt"
for ca in "$T/no-such-ca.pem" "$T/not-pem.txt"; do
	rc=0
	PUSHPOOL_DISPATCHER_CA_FILE=$ca "$PUSHPOOL" -c "$T/etc/pushpool.conf" check \
		>"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 78 ] && grep -q "\[dispatcher\] ca_file $ca" "$T/err" ||
		fail "check ca_file=$ca: exit $rc: $(cat "$T/err")"
done
grep -q "no PEM certificate" "$T/err" || fail "check ca_file without a certificate: $(cat "$T/err")"
# The test's authority: a self-signed certificate for 127.0.0.1, which
# the server below presents.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/srv.key" \
	-out "$T/srv.pem" -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -days 2 2>/dev/null
PUSHPOOL_DISPATCHER_CA_FILE=$T/srv.pem "$PUSHPOOL" -c "$T/etc/pushpool.conf" check >"$T/out" 2>&1 ||
	fail "check with a PEM ca_file: $(cat "$T/out")"
echo "check: ca_file missing or without a certificate refused (78), a PEM bundle taken"

# ---- ca_file reaches the requests: a Prefect server on a private authority --
# openssl s_server answers any GET with its status page (HTML, not the
# JSON Prefect sends): past TLS, the source says so; before it, the
# certificate is what fails.
openssl s_server -accept 127.0.0.1:0 -cert "$T/srv.pem" -key "$T/srv.key" -www \
	>"$T/srv.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; rm -rf "$T"' EXIT
# Its "ACCEPT 127.0.0.1:PORT" line says it listens (tests/wait-lib.sh's
# until_deadline: 30 s at most, whatever the machine's load).
. "$(dirname "$0")/../wait-lib.sh"
until_deadline 30 0.1 grep -q '^ACCEPT ' "$T/srv.log" ||
	fail "openssl s_server did not start: $(cat "$T/srv.log")"
port=$(sed -n 's/^ACCEPT .*://p' "$T/srv.log")
sed -e "s|^state_dir = .*|state_dir = $T/tls-state\nsweep_interval = 0|" \
	-e "s|^\[pool \"modal\"\]|[source \"prefect\"]\napi_url = https://127.0.0.1:$port/api\npools = modal\n\n&|" \
	"$T/etc/pushpool.conf" >"$T/tls.conf"
mkdir -p "$T/tls-state"
"$PUSHPOOL" -c "$T/tls.conf" once --timeout 60 >"$T/tls-system.log" 2>&1 || true
grep -q 'SSL certificate problem' "$T/tls-system.log" ||
	fail "a private authority without ca_file: $(cat "$T/tls-system.log")"
PUSHPOOL_DISPATCHER_CA_FILE=$T/srv.pem "$PUSHPOOL" -c "$T/tls.conf" once --timeout 60 \
	>"$T/tls-ca.log" 2>&1 || true
grep -q 'invalid JSON' "$T/tls-ca.log" && ! grep -q 'SSL certificate problem' "$T/tls-ca.log" ||
	fail "a private authority in ca_file: $(cat "$T/tls-ca.log")"
echo "ca_file: a private authority refused without it, trusted with it (serve's requests)"

# ---- credentials anywhere in a store URL -----------------------------------
url='postgresql://pp:Us%40erPw77@127.0.0.1:1/db?sslmode=disable&password=QueryPw123&sslpassword=SslKeyPw456'
PUSHPOOL_STORE_URL=$url "$PUSHPOOL" -c "$T/etc/pushpool.conf" check --print >"$T/print" 2>&1 ||
	fail "check --print: $(cat "$T/print")"
grep -q '^url = postgresql://' "$T/print" || fail "check --print: no url: $(cat "$T/print")"
rc=0
PUSHPOOL_STORE_URL=$url "$PUSHPOOL" -c "$T/etc/pushpool.conf" runs ls >"$T/store.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "runs ls on a closed PostgreSQL port succeeded"
for pw in 'Us%40erPw77' 'Us@erPw77' QueryPw123 SslKeyPw456; do
	grep -q "$pw" "$T/print" && fail "check --print shows $pw: $(grep url "$T/print")"
	grep -q "$pw" "$T/store.out" && fail "the store's error shows $pw: $(cat "$T/store.out")"
done
echo "store URL: userinfo, ?password= and &sslpassword= redacted from check --print and errors"
