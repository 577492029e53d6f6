#!/bin/sh
# A Prefect backlog drained without waiting out the poll interval: 23 flow
# runs due at once, a page of 5 a poll (max_in_flight = 5 caps the page),
# and a poll interval of an hour. Only polls brought forward by the source's
# backlog (a full page that gave runs, once the loop has room) can take the
# runs past the first page within the test's life; every run must end
# COMPLETED, claimed once and recorded once.
set -eu
. "$(pwd)/tests/scenario/prefect_test.inc"
PF_POLL=3600 DISPATCHER_EXTRA="max_in_flight = 5"
. "$ROOT/tests/scenario/prefect_lib.inc"
TOTAL=23
pf_setup_pools ecs
pf_runs ecs $TOTAL
[ "$(pf_count SCHEDULED)" = $TOTAL ] || fail "seeding: $(pf_count SCHEDULED) scheduled runs"

"$PUSHPOOL" serve -c "$T/pushpool.conf" >"$T/serve1.log" 2>&1 &
PIDS="$PIDS $!"
done_all() { [ "$(pf_count COMPLETED FAILED CRASHED CANCELLED)" = $TOTAL ]; }
wait_for 120 done_all ||
	fail "$(pf_count COMPLETED FAILED CRASHED CANCELLED) of $TOTAL runs ended in 120 s (one page a poll interval would end 5)"
[ "$(pf_count COMPLETED)" = $TOTAL ] || fail "$(pf_count COMPLETED) of $TOTAL COMPLETED"
stats >"$T/stats.json"
jq -e --argjson n $TOTAL '.keyed["prefect.pending_accepted"] | length == $n and all(.[]; . == 1)' \
	"$T/stats.json" >/dev/null || fail "PENDING accepted more than once for some run"
# Four full pages and a last one of three: at least five lists.
lists=$(jq '.keyed.requests["prefect:POST work_pools/get_scheduled_flow_runs"] // 0' "$T/stats.json")
[ "$lists" -ge 5 ] || fail "$lists lists for $TOTAL runs a page of 5"
stored=$("$PUSHPOOL" runs -c "$T/pushpool.conf" ls | grep -c -- '-' || true)
[ "$stored" = $TOTAL ] || fail "the store holds $stored runs, want $TOTAL"
kill -TERM $PIDS
wait $PIDS || fail "serve exited $?"
PIDS=
echo "ok: $TOTAL runs through pages of 5 with a poll interval of an hour ($lists lists)"
