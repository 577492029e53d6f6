# shellcheck shell=sh
# Checks on the waits a dispatcher chose between tries, read from its own
# log lines ("retrying in N ms"), for scenarios that inject throttling:
# the waits are what backoff decides, whatever the machine's load, so a
# check on them never races the wall clock. Sourced by scenarios.

# retry_waits LOG MIN MAX: every logged wait in LOG lies in [MIN, MAX] ms
# and at least one was logged; prints how many there were.
retry_waits() {
	rw_n=0
	for rw_ms in $(sed -n 's/.*: retrying in \([0-9][0-9]*\) ms (attempt .*/\1/p' "$1"); do
		if [ "$rw_ms" -lt "$2" ] || [ "$rw_ms" -gt "$3" ]; then
			echo "FAIL: a retry waited $rw_ms ms, outside $2..$3 ms" >&2
			exit 1
		fi
		rw_n=$((rw_n + 1))
	done
	if [ "$rw_n" = 0 ]; then
		echo "FAIL: no retry logged in $1: $(tail -n 5 "$1")" >&2
		exit 1
	fi
	echo "$rw_n"
}
