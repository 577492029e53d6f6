#!/bin/sh
# The make-test size of `make chaos`: 1,000 runs across the four pools
# through `serve` under injected 5xx, throttling, resets after the server
# acted and cut bodies, with serve killed by SIGKILL every 1-4 s and
# restarted. Covers issue 7's "kill -9 at random points during 500 runs":
# every run SUCCEEDED, one remote object each, nothing left (tests/chaos/run.sh).
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
# The deadline only bounds a hung run; `make check`'s sanitized build is
# several times slower on the same machine (PP_TEST_SLOWDOWN, Makefile).
RUNS=1000 DEADLINE=$((80 * ${PP_TEST_SLOWDOWN:-1})) exec sh "$(dirname "$0")/../chaos/run.sh"
