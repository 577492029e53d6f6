#!/bin/sh
# OOM torture: run each unit test binary (built with ASan and
# tests/oom/oom_wrap.c) once to count its allocations, then again failing
# allocation N, for every N (or every Kth N so no binary takes more than
# MAX_RUNS runs). A run fails the torture when pushpool code crashes or
# trips ASan or UBSan, the test hangs, or it leaks while every test case
# still passed. A case (or its setup) that fails on the injected ENOMEM
# returns through cmocka's longjmp, which leaks that case's own locals; a
# test that uses a NULL the library rightly returned, or that did not check
# its own failed allocation, faults in tests/unit/. Both are counted
# (leaky-case, test-fault), not judged.
#   usage: sh tests/oom/run.sh MAX_RUNS BIN...
MAX_RUNS=$1
shift
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export ASAN_OPTIONS=exitcode=86:detect_leaks=1:allocator_may_return_null=1
export LSAN_OPTIONS=exitcode=23
export UBSAN_OPTIONS=halt_on_error=1:exitcode=86
fail=0
printf '%-20s %7s %5s %6s %9s %10s %10s\n' binary allocs runs stride enomem-ok leaky-case test-fault
for bin in "$@"; do
	name=$(basename "$bin")
	OOM_FAIL_AT=0 OOM_COUNT_FILE=$T/count timeout 120 "$bin" >"$T/base.out" 2>&1
	rc=$?
	total=$(cat "$T/count" 2>/dev/null || echo 0)
	if [ $rc -ne 0 ]; then
		echo "SKIP: $name does not pass without injected failures (exit $rc)"
		continue
	fi
	if [ "$total" -eq 0 ]; then
		echo "SKIP: $name makes no allocation that can fail"
		continue
	fi
	stride=$(((total + MAX_RUNS - 1) / MAX_RUNS))
	runs=0 clean=0 leaky=0 testfault=0
	n=1
	while [ $n -le "$total" ]; do
		OOM_FAIL_AT=$n timeout 60 "$bin" >"$T/out" 2>&1
		rc=$?
		runs=$((runs + 1))
		bad=
		case $rc in
		0 | [1-9] | 1[0-9]) clean=$((clean + 1)) ;; # cmocka: number of failed cases
		23)
			if grep -qE '^\[  (FAILED|ERROR) +\]' "$T/out"; then
				leaky=$((leaky + 1))
			else
				bad="leak with every case passing"
			fi
			;;
		124) bad="hang" ;;
		255)
			# cmocka exits -1 when an assertion fails outside the test's
			# own context: a test server thread choking on the failed
			# allocation. pushpool's library never calls exit().
			if grep -qE 'ERROR: AddressSanitizer|runtime error' "$T/out"; then
				bad="sanitizer report in a helper thread"
			else
				testfault=$((testfault + 1))
			fi
			;;
		*)
			# A crash in the test's own code (it used a NULL the library
			# rightly returned), or after an allocation the test itself
			# made and did not check, says nothing about the library.
			where=$(grep -oE '(dispatcher|auth|providers|mock|tests)/[A-Za-z0-9_/]+\.[ch]:[0-9]+' \
				"$T/out" | head -n 1)
			site=$(sed -n 's/^oom_wrap: .* called from \(.*\)+\(0x[0-9a-f]*\)$/\1 \2/p' "$T/out")
			if [ -n "$site" ] &&
				addr2line -e ${site% *} ${site#* } | grep -q '/tests/unit/'; then
				where=tests/alloc
			fi
			# pushpool never calls abort(): a bare SIGABRT is a test
			# helper giving up on an error it did not expect.
			[ $rc -eq 134 ] && [ -z "$where" ] && where=tests/abort
			case $where in
			tests/*) testfault=$((testfault + 1)) ;;
			*) bad="exit $rc at ${where:-?}" ;;
			esac
			;;
		esac
		if [ -n "$bad" ]; then
			echo "FAIL: $name with allocation $n failing: $bad"
			grep -m 1 -A 14 'ERROR: \|runtime error\|SUMMARY\|Direct leak' "$T/out"
			echo "  reproduce: OOM_FAIL_AT=$n $bin"
			fail=1
		fi
		n=$((n + stride))
	done
	printf '%-20s %7s %5s %6s %9s %10s %10s\n' "$name" "$total" "$runs" "$stride" "$clean" \
		"$leaky" "$testfault"
done
exit $fail
