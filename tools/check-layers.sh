#!/bin/sh
# The include rules that keep the tree's picture true (docs/internals.md,
# "Layers"). Each row: a directory, then the paths its files may include
# (a directory prefix ending in / or one header). Exit 1 on any violation.
rules='
lib/ lib/
render/ lib/ render/
store/ lib/ store/
auth/ lib/ auth/ dispatcher/config.h
providers/ lib/ providers/ auth/ render/
sources/ lib/ store/ render/ sources/ auth/ dispatcher/config.h
provision/ lib/ auth/ providers/ render/ provision/ dispatcher/config.h
mock/ lib/ mock/
'
fail=0
for f in $(git ls-files 'lib/*' 'render/*' 'store/*' 'auth/*' 'providers/*' 'sources/*' 'provision/*' 'mock/*' | grep '\.[ch]$'); do
	dir=${f%%/*}/
	allowed=$(printf '%s\n' "$rules" | awk -v d="$dir" '$1 == d { $1 = ""; print }')
	for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
		ok=0
		for a in $allowed; do
			case $a in
			*/) case $inc in "$a"*) ok=1 ;; esac ;;
			*) [ "$inc" = "$a" ] && ok=1 ;;
			esac
		done
		# Generated files (build/gen) and headers beside the file are local.
		case $inc in */*) ;; *) ok=1 ;; esac
		if [ $ok = 0 ]; then
			echo "layers: $f includes $inc; $dir may include only:$allowed"
			fail=1
		fi
	done
done
[ $fail = 0 ] && echo "ok   layers: every include follows the rules in tools/check-layers.sh"
exit $fail
