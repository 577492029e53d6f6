#!/bin/sh
# Run each cmocka binary; VALGRIND=1 runs them under valgrind (zero errors, zero leaks).
fail=0
for t in "$@"; do
	if [ -n "$VALGRIND" ]; then
		valgrind -q --child-silent-after-fork=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
			--show-leak-kinds=definite,indirect,possible "$t" >/tmp/pp-unit.$$ 2>&1
	else
		"$t" >/tmp/pp-unit.$$ 2>&1
	fi
	rc=$?
	if [ $rc -ne 0 ]; then
		cat /tmp/pp-unit.$$
		echo "FAIL: $t (exit $rc)"
		fail=1
	else
		echo "ok   ${t#*/tests/}: $(grep -c '^\[       OK \]' /tmp/pp-unit.$$) cases"
	fi
done
rm -f /tmp/pp-unit.$$
exit $fail
