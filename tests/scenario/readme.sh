#!/bin/sh
# README.md: opens with the two commands; its configuration reference is
# exactly `pushpool check --print-defaults --markdown` (one heading level
# down); every command of `pushpool --help` is in its command table; every
# relative link resolves; every troubleshooting message is one the code
# really prints.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
R=$ROOT/README.md
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT INT TERM
fail() {
	echo "FAIL: $*"
	exit 1
}

# ---- the two commands first ----
awk '/^```/ { n++; next } n == 1' "$R" | sed 's/ *#.*//' | grep . >"$W/first"
printf 'make demo\nmake test\n' | diff -u - "$W/first" || fail "README's first block is not make demo / make test"
[ "$(grep -n '^```' "$R" | head -n 1 | cut -d: -f1)" -lt 8 ] || fail "the two commands are not at the top"

# ---- configuration reference == the config table ----
sed -n '/^<!-- BEGIN CONFIG REFERENCE -->$/,/^<!-- END CONFIG REFERENCE -->$/p' "$R" | sed '1d;$d' >"$W/readme.md"
"$PUSHPOOL" check --print-defaults --markdown | sed 's/^#/##/' >"$W/table.md"
[ -s "$W/readme.md" ] || fail "README has no generated configuration reference"
diff -u "$W/table.md" "$W/readme.md" >"$W/diff" ||
	{ head -n 40 "$W/diff"; fail "README configuration reference is stale: make deploy-docs"; }
# Every key once in the reference, with its environment variable.
"$PUSHPOOL" check --print-defaults | sed -n 's/^# \([a-z_]*\) (.*), \(PUSHPOOL_[A-Z_<>]*\)$/\1 \2/p' >"$W/keys"
[ "$(wc -l <"$W/keys")" -ge 40 ] || fail "could not read the key table"
while read -r key env; do
	grep -qF "| \`$key\` |" "$W/readme.md" || fail "README lacks key $key"
	grep -qF "\`$env\`" "$W/readme.md" || fail "README lacks $env"
done <"$W/keys"

# ---- commands ----
"$PUSHPOOL" --help | sed -n 's/^  \([a-z][a-z]*\( [a-z][a-z]*\)\?\)  .*/\1/p' | grep -v '^help$' >"$W/commands"
while read -r cmd; do
	grep -q "^| \`$cmd[\` ]" "$R" || fail "README command table lacks $cmd"
done <"$W/commands"
for code in 0 1 64 65 66 69 70 74 75 77 78; do
	grep -q "^| $code | " "$R" || fail "README exit code table lacks $code"
done

# ---- relative links ----
grep -o '](\([^)#]*\)[^)]*)' "$R" | sed 's/^](//; s/[#)].*//' | grep -v '^https\?:' | grep . | sort -u >"$W/links"
while read -r link; do
	[ -e "$ROOT/$link" ] || fail "README links to missing $link"
done <"$W/links"

# ---- troubleshooting messages come from the code ----
# Each row's first code span is cut at its placeholders (…, CAPITALS,
# quoted values, numbers, brackets, punctuation); some run of two or more
# words of a piece (10 characters at least), or one word of 12, must appear
# in the sources.
sed -n '/^## Troubleshooting$/,/^## /p' "$R" | grep '^| `' | sed 's/^| `\([^`]*\)`.*/\1/' >"$W/messages"
[ "$(wc -l <"$W/messages")" -ge 12 ] || fail "troubleshooting table too short"
n=0
while read -r msg; do
	printf '%s\n' "$msg" | sed 's/"[^"]*"/\n/g; s/\[[^]]*\]/\n/g; s/…/\n/g; s/\<[A-Z][A-Z_]*\>/\n/g' |
		sed 's/[0-9][0-9.:]*/\n/g; s/[();,]/\n/g; s/: /\n/g' | sed 's/^[ :.]*//; s/[ :.]*$//' |
		awk '{ for (i = 1; i <= NF; i++) { g = $i; if (length(g) >= 12) print g; for (j = i + 1; j <= NF; j++) {
			g = g " " $j; if (length(g) >= 10) print g } } }' >"$W/pieces"
	found=
	while read -r piece; do
		if grep -rqF -- "$piece" "$ROOT/dispatcher" "$ROOT/auth" "$ROOT/providers" "$ROOT/lib" "$ROOT/render" "$ROOT/store" "$ROOT/sources"; then
			found=$piece
			break
		fi
	done <"$W/pieces"
	[ -n "$found" ] || fail "troubleshooting message not in the code: $msg"
	n=$((n + 1))
done <"$W/messages"

echo "readme: $(wc -l <"$W/keys") keys, $(wc -l <"$W/commands") commands, $(wc -l <"$W/links") links, $n messages checked"
