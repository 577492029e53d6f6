# shellcheck shell=sh
# Sourced by scenario tests that wait for a condition (tests/pg-lib.sh and
# its tests, ecs_status_batch.sh): a wait bounded by the wall clock, not by
# a count of tries, which a busy machine stretches.
#
# until_deadline SECONDS INTERVAL CMD...: run CMD every INTERVAL seconds
# until it succeeds (0), or SECONDS have passed (1).
until_deadline() {
	deadline=$(($(date +%s) + $1))
	interval=$2
	shift 2
	until "$@"; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep "$interval"
	done
}
