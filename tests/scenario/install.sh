#!/bin/sh
# make install into a DESTDIR: the installed binary runs (--version, check
# against the installed templates, template default from them), the man
# pages render with no groff warning and list every config key, the
# generated docs are current; make uninstall leaves no file behind.
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
ROOT=$(pwd)
BUILD_DIR=$(dirname "$PUSHPOOL")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT INT TERM
fail() {
	echo "FAIL: $*"
	exit 1
}
D=$W/root
PREFIX=/opt/pushpool-test

make -s install DESTDIR="$D" PREFIX="$PREFIX" BUILD="$BUILD_DIR" >"$W/install.log" 2>&1 ||
	{ cat "$W/install.log"; fail "make install DESTDIR=$D"; }
BIN=$D$PREFIX/bin/pushpool
DATA=$D$PREFIX/share/pushpool
for f in "$BIN" "$DATA/templates/cloud-run-v2-push.json" "$DATA/templates/ecs-push.json" \
	"$DATA/templates/azure-container-instance-push.json" "$DATA/templates/modal-push.json" \
	"$DATA/pushpool.conf.example" "$D$PREFIX/share/man/man1/pushpool.1" \
	"$D$PREFIX/share/man/man5/pushpool.conf.5" "$D$PREFIX/lib/systemd/system/pushpool.service"; do
	[ -f "$f" ] || fail "not installed: ${f#"$D"}"
done
[ -x "$BIN" ] || fail "installed binary is not executable"
# The mock is a test program: built beside pushpool, never installed.
[ -z "$(find "$D" -name 'pushpool-mock*' -o -name 'libppmock*')" ] ||
	fail "make install installed the mock: $(find "$D" -name '*mock*')"
# So the installed pushpool has no mock to run: it says so, exit 69.
rc=0
out=$(PATH=/usr/bin:/bin "$BIN" mock --help 2>&1) || rc=$?
[ "$rc" = 69 ] && case $out in *pushpool-mock*) true ;; *) false ;; esac ||
	fail "installed 'pushpool mock' without pushpool-mock: exit $rc: $out"
grep -q "^ExecStart=$PREFIX/bin/pushpool " "$D$PREFIX/lib/systemd/system/pushpool.service" ||
	fail "unit's ExecStart does not name $PREFIX/bin/pushpool"
# DESTDIR only stages: no path inside the installed files names it.
grep -rl "$D" "$D" >/dev/null 2>&1 && fail "installed files mention the DESTDIR"

# ---- the installed binary ----
"$BIN" --version | grep -Eq '^pushpool [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
# One pool per type, each on its installed template file.
mkdir -p "$W/state"
{
	printf '[dispatcher]\nstate_dir = %s/state\n' "$W"
	for t in cloud-run-v2-push ecs-push azure-container-instance-push modal-push; do
		type=$(echo "$t" | sed 's/-push$/:push/')
		printf '\n[pool "%s"]\ntype = %s\ntemplate_path = %s/templates/%s.json\n' "$t" "$type" "$DATA" "$t"
	done
} >"$W/pushpool.conf"
"$BIN" check -c "$W/pushpool.conf" >"$W/check.out" 2>&1 || { cat "$W/check.out"; fail "installed check"; }
grep -q '^configuration OK$' "$W/check.out" || fail "check did not say configuration OK"
"$BIN" render -c "$W/pushpool.conf" -p ecs-push -v image=repo/flows:1 >"$W/render.json" ||
	fail "render with the installed ecs template"
grep -q 'repo/flows:1' "$W/render.json" || fail "rendered job lacks the image"
# The installed templates are the ones read: a marked copy shows through
# PUSHPOOL_TEMPLATE_DIR, a broken one is reported with its path.
sed 's/"description": "/"description": "INSTALLED /' "$DATA/templates/ecs-push.json" >"$W/ecs.json"
cp "$W/ecs.json" "$DATA/templates/ecs-push.json"
PUSHPOOL_TEMPLATE_DIR=$DATA/templates "$BIN" template default --type ecs:push | grep -q 'INSTALLED' ||
	fail "template default does not read the installed templates"
echo '{"job_configuration": ' >"$DATA/templates/ecs-push.json"
if "$BIN" check -c "$W/pushpool.conf" >"$W/check.out" 2>&1; then
	fail "check passed with a broken installed template"
fi
grep -q "ecs-push.json" "$W/check.out" || { cat "$W/check.out"; fail "error does not name the template"; }

# ---- man pages: no warnings, every key of the config table ----
for page in man1/pushpool.1 man5/pushpool.conf.5; do
	LC_ALL=C MANWIDTH=80 man --warnings -l "$D$PREFIX/share/man/$page" >"$W/man.out" 2>"$W/man.err" ||
		fail "man $page"
	[ ! -s "$W/man.err" ] || { cat "$W/man.err"; fail "man --warnings: $page"; }
	[ "$(wc -l <"$W/man.out")" -gt 50 ] || fail "$page renders almost nothing"
done
# The warnings check can fail: an unknown macro is reported.
printf '.TH X 1\n.SH NAME\nx \\- y\n.XX\n' >"$W/bad.1"
LC_ALL=C MANWIDTH=80 man --warnings -l "$W/bad.1" >/dev/null 2>"$W/man.err" || true
[ -s "$W/man.err" ] || fail "man --warnings reports nothing for a bad page"
LC_ALL=C MANWIDTH=200 man -l "$D$PREFIX/share/man/man5/pushpool.conf.5" 2>/dev/null >"$W/conf5.txt"
"$PUSHPOOL" check --print-defaults | sed -n 's/^;\([a-z_]*\) =.*/\1/p' | sort -u >"$W/keys"
while read -r key; do
	grep -Eq "^ +$key( |$)" "$W/conf5.txt" || fail "pushpool.conf(5) lacks key $key"
done <"$W/keys"
LC_ALL=C MANWIDTH=200 man -l "$D$PREFIX/share/man/man1/pushpool.1" 2>/dev/null >"$W/man1.txt"
"$PUSHPOOL" --help | sed -n 's/^  \([a-z][a-z]*\( [a-z][a-z]*\)\?\)  .*/\1/p' >"$W/commands"
[ "$(wc -l <"$W/commands")" -ge 10 ] || fail "could not read the command list"
while read -r cmd; do
	grep -q "^   $cmd\( \|\$\)" "$W/man1.txt" || fail "pushpool(1) lacks command $cmd"
done <"$W/commands"
for code in 0 1 64 65 66 69 70 74 75 77 78; do
	grep -Eq "^       $code( |$)" "$W/man1.txt" || fail "pushpool(1) lacks exit status $code"
done
sh "$ROOT/man/docs-sync.sh" "$PUSHPOOL" --check || fail "generated docs are stale"

# ---- uninstall ----
make -s uninstall DESTDIR="$D" PREFIX="$PREFIX" >/dev/null
left=$(find "$D" -type f -o -type l)
[ -z "$left" ] || fail "left after make uninstall: $left"
echo "install: $(wc -l <"$W/keys") keys and $(wc -l <"$W/commands") commands documented; uninstall clean"
