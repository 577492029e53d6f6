#!/bin/sh
# Run each libFuzzer binary for SECONDS, growing its corpus in
# build-fuzz/corpus/NAME (seeded with the bundled templates for the JSON and
# template targets, with tests/fuzz/seeds/fuzz_json too for the JSON one,
# examples/ for the config target, tests/data/deploy for the YAML target and
# tests/fuzz/seeds/NAME for the others that have seeds), and print one line
# per target: executions, executions/s, corpus size and coverage. Exits non-zero
# when a target finds a crash, leak or sanitizer report (log and the
# crashing input are kept under build-fuzz/).
#   usage: sh tests/fuzz/run.sh SECONDS BIN...
SECONDS_EACH=$1
shift
OUT=build-fuzz
fail=0
printf '%-16s %12s %10s %8s %8s\n' target execs execs/s corpus cov
for bin in "$@"; do
	name=$(basename "$bin")
	corpus=$OUT/corpus/$name
	mkdir -p "$corpus" "$OUT/crashes"
	seeds=
	case $name in
	fuzz_json) seeds="templates tests/fuzz/seeds/fuzz_json" ;;
	fuzz_render) seeds=templates ;;
	# fuzz_config: its seeds load in one process, the small one first, whose
	# secret ("pool") appears in the example's names (fuzz_config.c).
	fuzz_config) seeds="examples tests/fuzz/seeds/fuzz_config" ;;
	fuzz_prefect | fuzz_auth | fuzz_xml) seeds=tests/fuzz/seeds/$name ;;
	fuzz_yaml) seeds=tests/data/deploy ;;
	fuzz_pem) seeds=tests/data/keys ;;
	esac
	log=$OUT/$name.log
	# -rss_limit_mb: the parsers cap their input, so more means a leak.
	"$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=1024 \
		-timeout=10 -artifact_prefix="$OUT/crashes/$name-" "$corpus" $seeds >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	printf '%-16s %12s %10s %8s %8s\n' "$name" "${execs:-?}" "${rate:-?}" \
		"$(ls "$corpus" | wc -l)" "${cov:-?}"
	if [ $rc -ne 0 ]; then
		echo "FAIL: $name exited $rc; see $log" >&2
		grep -A 30 -m 1 'ERROR\|runtime error\|deadly signal' "$log" >&2
		fail=1
	fi
done
exit $fail
