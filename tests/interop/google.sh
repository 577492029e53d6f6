#!/bin/sh
# Our service-account JWT assertion, checked by google-auth (python3-google-auth):
# a tiny C driver linked against build/libpushpool.a signs an assertion from a
# test key file; google_jwt.py verifies it with the key's certificate and
# compares its header and claims with the assertion google-auth itself makes.
# Usage: sh tests/interop/google.sh [PUSHPOOL_BINARY]  (run from the repo root)
set -eu
PY=/usr/bin/python3
if ! "$PY" -c 'import google.auth.jwt, google.oauth2.service_account' 2>/dev/null; then
	echo "skip: no python3-google-auth"
	exit 0
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
KEYS=$ROOT/tests/data/keys
[ -f "$BUILD/libpushpool.a" ] || { echo "FAIL: $BUILD/libpushpool.a missing (run make)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat >"$T/driver.c" <<'EOC'
/* Print the JWT-bearer assertion pushpool signs for the key file argv[1]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/gcp.h"

int main(int argc, char **argv)
{
	struct pp_cred_conf conf;
	struct pp_gcp *g = NULL;
	struct pp_error err;
	char *jwt = NULL;
	if (argc != 2)
		return 64;
	memset(&conf, 0, sizeof(conf));
	conf.type = (char *)"gcp";
	conf.source = (char *)"file";
	conf.file = argv[1];
	if (pp_gcp_new(&conf, &g, &err) || pp_gcp_assertion(g, time(NULL), &jwt, &err)) {
		fprintf(stderr, "driver: %s\n", err.msg);
		pp_gcp_free(g);
		return 1;
	}
	printf("%s\n", jwt);
	free(jwt);
	pp_gcp_free(g);
	return 0;
}
EOC
${CC:-cc} -std=c11 -D_GNU_SOURCE -I"$ROOT" -o "$T/driver" "$T/driver.c" "$BUILD/libpushpool.a" \
	$(pkg-config --libs libcurl openssl libjwt inih libmicrohttpd sqlite3 libnghttp2 libpq) \
	-lm -lpthread

pem=$(awk 'BEGIN { ORS = "\\n" } { print }' "$KEYS/test_only_rsa_key.pem")
cat >"$T/sa.json" <<EOS
{"type": "service_account", "project_id": "interop-test", "private_key_id": "interop-kid-1",
 "private_key": "$pem", "client_email": "interop@interop-test.iam.gserviceaccount.com",
 "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}
EOS
"$T/driver" "$T/sa.json" >"$T/assertion"
"$PY" "$ROOT/tests/interop/google_jwt.py" "$T/assertion" "$KEYS/test_only_rsa_cert.pem" "$T/sa.json"
