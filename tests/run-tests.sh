#!/bin/sh
# `make test` after the build: tests/run-unit.sh on the unit suites
# (arguments after the first) and tests/run-scenarios.sh on PUSHPOOL (the
# first) at the same time. The unit suites mostly wait (on mock clouds and
# timeouts) and use little CPU, so beside the scenarios they cost next to
# nothing instead of a minute before them. The scenarios' lines come as
# they end; the unit suites' results follow, whole, once both are done.
# Fails when either fails.
pushpool=$1
shift
UNIT_OUT=$(mktemp)
trap 'rm -f "$UNIT_OUT"' EXIT INT TERM
sh tests/run-unit.sh "$@" >"$UNIT_OUT" 2>&1 &
unit=$!
sh tests/run-scenarios.sh "$pushpool"
scenarios=$?
wait "$unit"
units=$?
cat "$UNIT_OUT"
[ "$scenarios" = 0 ] && [ "$units" = 0 ]
