#!/bin/sh
# Our SigV4 signer against botocore's SigV4Auth (python3-botocore) on
# randomized requests at a fixed time: every Authorization must be equal.
# Usage: sh tests/interop/sigv4.sh [PUSHPOOL_BINARY, unused]   (after `make`: needs
# build/libpushpool.a). SIGV4_COUNT (200) and SIGV4_SEED (20150830) vary the run.
set -eu
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
BUILD=${BUILD:-build}
if ! "$PY" -c 'import botocore.auth' 2>/dev/null; then
	echo "skip: no python3-botocore"
	exit 0
fi
[ -f "$BUILD/libpushpool.a" ] || { echo "FAIL: $BUILD/libpushpool.a missing (run make)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PKGS="libcurl openssl libjwt inih libmicrohttpd sqlite3 libnghttp2 libpq"
# The Makefile's warning flags, so the helper is held to the same standard.
${CC:-cc} -std=c11 -D_GNU_SOURCE -O1 -g -I. -I"$BUILD" -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Wvla -Wwrite-strings -Wno-unused-parameter -Werror \
	$(pkg-config --cflags $PKGS) -o "$T/sigv4_cli" tests/interop/sigv4_cli.c \
	"$BUILD/libpushpool.a" $(pkg-config --libs $PKGS) -lm -lpthread
"$PY" tests/interop/botocore_sigv4.py "$T/sigv4_cli" "${SIGV4_COUNT:-200}" "${SIGV4_SEED:-20150830}"
