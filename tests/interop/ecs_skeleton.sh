#!/bin/sh
# Our ECS request bodies against the AWS CLI's own request shapes: every key
# of the RegisterTaskDefinition and RunTask bodies that `render --request`
# shows must exist, at the same place and with the same JSON type, in
# `aws ecs <op> --generate-cli-skeleton input` (the service model's input
# shape). Needs `aws`.
# Usage: sh tests/interop/ecs_skeleton.sh PUSHPOOL_BINARY   (from the repo root)
set -eu
PUSHPOOL=${1:?usage: ecs_skeleton.sh PUSHPOOL_BINARY}
if ! command -v aws >/dev/null 2>&1; then
	echo "skip: no aws CLI"
	exit 0
fi
T=$(mktemp -d)
[ -n "${KEEP_T:-}" ] && echo "work dir: $T"
MOCK_PID=
trap '[ -n "$MOCK_PID" ] && kill $MOCK_PID 2>/dev/null; [ -n "${KEEP_T:-}" ] || rm -rf "$T"' EXIT
. "$(pwd)/tools/mock-env.sh"
# A rich run: secrets, env, overrides, tags, network configuration.
"$PUSHPOOL" render -c "$T/pushpool.conf" -p ecs --request \
	-v 'env={"A":"1"}' -v cpu=2048 -v memory=4096 -v 'command=python -m flows' \
	-v 'labels={"team":"data"}' >"$T/req" 2>"$T/err" || { cat "$T/err"; exit 1; }
# Split the dump into one JSON body per request.
awk -v dir="$T" '/^# [0-9]+ /{ f = dir "/" $3 ".json"; body = 0; next }
	/^$/ && f && !body { body = 1; next }
	body && f { print > f }' "$T/req"
for op in RegisterTaskDefinition RunTask; do
	cli=$(echo "$op" | sed 's/\([a-z]\)\([A-Z]\)/\1-\2/g' | tr 'A-Z' 'a-z')
	aws ecs "$cli" --generate-cli-skeleton input >"$T/$op.skeleton"
	[ -s "$T/$op.json" ] || { echo "FAIL: no $op body in the dump"; cat "$T/req"; exit 1; }
	# Paths (array indexes folded to []) with their JSON types.
	shape='[paths(scalars, arrays, objects) as $p | {p: ($p | map(if type == "number" then "[]" else . end) | join(".")), t: (getpath($p) | type)}] | unique | .[] | "\(.p) \(.t)"'
	jq -r "$shape" "$T/$op.skeleton" | sort -u >"$T/$op.allowed"
	jq -r "$shape" "$T/$op.json" | sort -u >"$T/$op.ours"
	bad=$(comm -23 "$T/$op.ours" "$T/$op.allowed")
	if [ -n "$bad" ]; then
		echo "FAIL: $op keys or types the AWS model does not have:"
		echo "$bad"
		exit 1
	fi
	echo "$op: $(wc -l <"$T/$op.ours") paths, all in the AWS CLI input shape"
done
echo "ok: ECS request bodies match the AWS CLI's input shapes"
