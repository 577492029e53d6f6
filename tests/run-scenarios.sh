#!/bin/sh
# Run every tests/scenario/*.sh with PUSHPOOL pointing at the binary.
PUSHPOOL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
export PUSHPOOL
fail=0
for s in $(ls tests/scenario/*.sh 2>/dev/null | sort); do
	log=$(mktemp)
	start=$(date +%s)
	if sh "$s" >"$log" 2>&1; then
		echo "ok   $(basename "$s") ($(( $(date +%s) - start ))s)"
	else
		cat "$log"
		echo "FAIL: $s"
		fail=1
	fi
	rm -f "$log"
done
exit $fail
