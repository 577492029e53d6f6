#!/bin/sh
# The bodies pushpool sends, judged by the clouds' own libraries rather than
# by the mock: runs on the ECS, Cloud Run and Modal pools against
# pushpool-mock with PUSHPOOL_MOCK_BODY_DIR set, then spec_bodies.py checks
# every body the mock saw with botocore (vendored 1.43.11 model, patterns
# included), python3-protobuf (Cloud Run protos compiled by protoc) and
# `protoc --decode` (Modal). Needs protoc and /usr/bin/python3 with
# python3-botocore, python3-protobuf and python3-regex.
# Usage: sh tests/interop/spec_bodies.sh PUSHPOOL_BINARY   (from the repo root)
set -eu
PUSHPOOL=${1:?usage: spec_bodies.sh PUSHPOOL_BINARY}
SPECS=$(pwd)/tests/data/cloud-specs
for cmd in protoc /usr/bin/python3; do
	command -v $cmd >/dev/null 2>&1 || { echo "skip: no $cmd"; exit 0; }
done
T=$(mktemp -d)
MOCK_PID=
trap '[ -n "$MOCK_PID" ] && kill $MOCK_PID 2>/dev/null; rm -rf "$T"' EXIT
mkdir "$T/bodies"
PUSHPOOL_MOCK_BODY_DIR=$T/bodies
export PUSHPOOL_MOCK_BODY_DIR
. "$(pwd)/tools/mock-env.sh"
# Modal: this suite judges the messages; the mock's header check (which the
# modal scenarios exercise) is left out so a header finding does not hide them.
curl -fsS -X POST -d '{"api":"modal","enabled":false}' "$BASE/control/validate" >/dev/null
run() {
	out=$("$PUSHPOOL" run -c "$T/pushpool.conf" --wait "$@" 2>&1) ||
		{ echo "FAIL: pushpool run $*: $out"; exit 1; }
}
run -p ecs -v 'env={"A":"1"}' -v cpu=2048 -v memory=4096 -v 'command=python -m flows' \
	-v 'labels={"team":"data"}'
run -p cloud-run -v 'env={"A":"1"}' -v 'command=python -m flows' -v 'labels={"team":"data"}'
run -p modal -v 'env={"A":"1"}'
# The provisioning APIs: apply (keyed, so the key calls are there too), then
# destroy, for the Cloud Run pool; Modal's environment calls.
prov() {
	out=$("$PUSHPOOL" -c "$T/pushpool.conf" provision "$@" --yes </dev/null 2>&1) ||
		{ echo "FAIL: pushpool provision $*: $out"; exit 1; }
}
prov apply -p cloud-run --create-key
prov destroy -p cloud-run --credentials "$(sed -n '/^\[pool "cloud-run"\]/,/^\[/s/^credentials = //p' "$T/pushpool.conf")"
prov apply -p modal --create-environment --environment interop
prov destroy -p modal --credentials "$(sed -n '/^\[pool "modal"\]/,/^\[/s/^credentials = //p' "$T/pushpool.conf")"
protoc -I "$SPECS" --include_imports --descriptor_set_out="$T/run.pb" \
	google/cloud/run/v2/job.proto google/cloud/run/v2/execution.proto 2>/dev/null
protoc -I "$SPECS" --include_imports --descriptor_set_out="$T/gcpinfra.pb" \
	google/api/serviceusage/v1/serviceusage.proto google/iam/admin/v1/iam.proto \
	google/cloud/resourcemanager/v3/projects.proto \
	google/devtools/artifactregistry/v1/service.proto 2>/dev/null
/usr/bin/python3 tests/interop/spec_bodies.py "$T/bodies" "$SPECS" "$T/run.pb" "$T/gcpinfra.pb"
