#!/bin/sh
# Regenerates the parts of the docs that come from the config key table
# (`pushpool check --print-defaults`): the KEYS section of
# man/pushpool.conf.5 and the configuration reference in README.md, each
# between its BEGIN/END marker lines. With --check, changes nothing and
# exits 1 naming each stale file.
# usage: sh man/docs-sync.sh PUSHPOOL [--check]
set -eu
PUSHPOOL=${1:?usage: docs-sync.sh PUSHPOOL [--check]}
CHECK=${2:-}
DIR=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT INT TERM

"$PUSHPOOL" check --print-defaults | awk -f "$DIR/man/conf-keys.awk" >"$T/keys.roff"
# One heading level down: the table's "# title" becomes a README "## title".
"$PUSHPOOL" check --print-defaults --markdown | sed 's/^#/##/' >"$T/keys.md"

# splice FILE BEGIN-LINE END-LINE CONTENT: FILE with the lines between the
# markers replaced by CONTENT.
splice() {
	grep -qxF "$2" "$1" && grep -qxF "$3" "$1" || {
		echo "docs-sync: $1: marker lines \"$2\" / \"$3\" missing" >&2
		exit 1
	}
	# Through the environment: awk -v would turn the roff marker's \" into ".
	B="$2" E="$3" F="$4" awk '
		$0 == ENVIRON["E"] { skip = 0 }
		!skip { print }
		$0 == ENVIRON["B"] { while ((getline l < ENVIRON["F"]) > 0) print l; skip = 1 }
	' "$1"
}

stale=0
sync_one() { # FILE BEGIN END CONTENT
	splice "$1" "$2" "$3" "$4" >"$T/new"
	if cmp -s "$1" "$T/new"; then
		return 0
	fi
	if [ "$CHECK" = --check ]; then
		echo "docs-sync: $1 is stale; run: make deploy-docs" >&2
		diff -u "$1" "$T/new" | head -n 40 >&2 || true
		stale=1
	else
		cat "$T/new" >"$1"
		echo "docs-sync: updated $1"
	fi
}
sync_one "$DIR/man/pushpool.conf.5" '.\" BEGIN KEYS' '.\" END KEYS' "$T/keys.roff"
sync_one "$DIR/README.md" '<!-- BEGIN CONFIG REFERENCE -->' '<!-- END CONFIG REFERENCE -->' "$T/keys.md"
exit $stale
