#!/bin/sh
# Every command of the command table, and every subcommand, answers --help
# and `help CMD` with exit 0 and a non-empty text, without a configuration
# (none exists here) and without creating anything in the working directory.
# `schedule --help`, `help schedule` and `runs ls --help` used to exit 64 or
# try to open /etc/pushpool/pushpool.conf (issue 18).
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
cd "$T"
PUSHPOOL_CONFIG=$T/absent.conf
export PUSHPOOL_CONFIG

# try EXIT_WANTED ARGS...: exit 0 and some text on stdout.
try() {
	rc=0
	"$PUSHPOOL" "$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 0 ] || fail "pushpool $*: exit $rc: $(head -c 300 "$T/err")"
	[ -s "$T/out" ] || fail "pushpool $*: no help text on stdout"
	if grep -q 'absent.conf' "$T/err"; then
		fail "pushpool $*: read the configuration"
	fi
}

# The command table, as `pushpool help` lists it (indented NAME, two spaces,
# summary), so a command added later is covered too.
"$PUSHPOOL" help >"$T/list"
sed -n '/^commands:/,/^$/p' "$T/list" | sed -n 's/^  \([a-z][a-z ]*[a-z]\)  .*/\1/p' |
	sed 's/ *$//' >"$T/commands"
n=$(wc -l <"$T/commands")
[ "$n" -ge 10 ] || fail "found only $n commands in pushpool help: $(cat "$T/list")"

count=0
while read -r cmd; do
	first=${cmd%% *}
	# shellcheck disable=SC2086 # a command name may be two words
	try $cmd --help
	try $cmd -h
	try "$first" --help
	try help "$first"
	count=$((count + 4))
done <"$T/commands"

# Subcommands the table does not name.
for sub in "runs ls" "runs show" "runs cancel" "runs -c $T/absent.conf ls" "store migrate" "store id" \
	"auth check" "template default"; do
	# shellcheck disable=SC2086
	try $sub --help
	count=$((count + 1))
done
try help help
try --help

[ -z "$(ls -A "$T" | grep -v -e '^out$' -e '^err$' -e '^list$' -e '^commands$')" ] ||
	fail "--help left files behind: $(ls -A "$T")"
echo "help: $count --help forms of $n commands and their subcommands, exit 0, no config read"
