#!/bin/sh
# pushpool provision for ECS against `pushpool mock`: plan on an empty
# account (no default VPC) lists every resource; apply creates them, each
# tagged in its create call; a second apply and plan change nothing; kill -9
# at 10 random points of apply, each followed by a re-run, ends where one
# clean apply does (0 duplicates, 0 untagged); a name held without the tag
# blocks apply before any change; destroy leaves the account as it was and
# never touches the planted untagged resources; the written
# drop-in alone lets a run go end to end; a region with a default VPC uses
# its subnets, and a pool with vpc_id alone (Prefect's way) has them
# looked up; --create-key makes a user whose access key runs the job;
# provisioning as another identity grants the pool's own.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NEED="mock provision run"
. "$ROOT/tests/scenario/provision_lib.inc"

AKID=AKIDPROVISIONSCENARIO
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYPROVISIONKEY
PUSHPOOL_MOCK_AWS_KEYS="$AKID:$SECRET" "$PUSHPOOL" mock --listen 127.0.0.1:0 --port-file "$T/ports" \
	--seed 7 --provision-seconds 0.1 --run-seconds 0.2 >"$T/mock.log" 2>&1 &
MOCK_PID=$!
mock_ready 'http://'
BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$T/ports" | head -n 1)

control() {
	curl -fsS -X POST -H 'Content-Type: application/json' -d "$2" "$BASE$1" >/dev/null
}
# Every successful call that changed the account, by action.
changes() {
	curl -fsS "$BASE/control/stats" | jq -cS '.keyed["aws.changes"] // {}'
}
# The account as comparable text: each resource by type and name (EC2's
# random ids replaced by their Name tag), with its tags and IAM policies.
state() {
	curl -fsS "$BASE/aws/account" | jq -cS 'map({type, region,
		name: (if (.type | startswith("ec2.")) and .tags.Name then .tags.Name else .id end),
		tags, attached: (.attached | sort), inline: (.inline | keys)}) | sort_by(.type, .name)'
}
untagged() {
	curl -fsS "$BASE/control/stats" | jq '.live.live_aws_untagged'
}

# A region without a default VPC first: the whole network is made. A new
# task shows MISSING for 0.2 s, not 2 s: the runs here test provisioning.
control /control/behaviours '{"name": "aws.default_vpc", "on": false}'
control /control/behaviours '{"name": "ecs.missing", "on": true, "seconds": 0.2}'
# RunTask only into a cluster that exists: the jobs run in the one apply made.
control /control/behaviours '{"name": "ecs.clusters", "on": true}'
mkdir -p "$T/state"
cat >"$T/pushpool.conf" <<EOF
[dispatcher]
state_dir = $T/state
status_interval = 0.1
backoff_base_ms = 20
backoff_max_ms = 200

[credentials "aws"]
type = aws
source = static
access_key_id = $AKID
secret_access_key = $SECRET
region = us-east-1

[pool "ecs"]
type = ecs:push
credentials = aws
endpoint = $BASE/aws/ecs
job_variables = {"image": "repo/flows:1"}
EOF
pp() {
	"$PUSHPOOL" -c "$T/pushpool.conf" "$@"
}

# What pushpool did not make and must keep: a VPC, a security group with
# the pool's group name in it, and two log groups (one with the name pool
# "other" would use), none tagged.
control /aws/account '{"type": "ec2.vpc", "region": "us-east-1", "id": "vpc-0planted000000001",
	"description": {"vpcId": "vpc-0planted000000001", "cidrBlock": "10.0.0.0/16", "state": "available", "isDefault": false}}'
control /aws/account '{"type": "ec2.sg", "region": "us-east-1", "id": "sg-0planted000000001",
	"description": {"groupId": "sg-0planted000000001", "groupName": "pushpool-ecs", "vpcId": "vpc-0planted000000001"}}'
control /aws/account '{"type": "logs.group", "region": "us-east-1", "id": "/team/etl",
	"description": {"logGroupName": "/team/etl", "logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:/team/etl"}}'
control /aws/account '{"type": "logs.group", "region": "us-east-1", "id": "/pushpool/other",
	"description": {"logGroupName": "/pushpool/other", "logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:/pushpool/other"}}'
before=$(state)
[ "$(untagged)" -eq 4 ] || fail "planted: $(untagged) untagged resources, not 4"

# 1. plan on an empty account: every resource, exit 2, nothing changed.
rc=0
out=$(pp provision plan -p ecs) || rc=$?
[ $rc -eq 2 ] || fail "plan exited $rc, not 2: $out"
for want in 'execution-role +pushpool-ecs-execution +absent +create +iam:GetRole,iam:CreateRole,iam:TagRole' \
	'role-policy +AmazonECSTaskExecutionRolePolicy +absent +create' \
	'role-inline-policy +pushpool-create-log-group +absent +create' \
	'ecs-cluster +pushpool-ecs +absent +create +ecs:DescribeClusters,ecs:CreateCluster,ecs:TagResource' \
	'log-group +/pushpool/ecs +absent +create +logs:DescribeLogGroups,.*logs:CreateLogGroup' \
	'ecr-repository +pushpool/ecs +absent +create +ecr:DescribeRepositories,.*ecr:CreateRepository' \
	'vpc +pushpool-ecs +absent +create +ec2:DescribeVpcs,ec2:CreateVpc' \
	'subnet +pushpool-ecs-us-east-1a +absent +create' 'subnet +pushpool-ecs-us-east-1b' \
	'subnet +pushpool-ecs-us-east-1c' 'internet-gateway +pushpool-ecs +absent +create' \
	'route-table +pushpool-ecs +absent +create' 'security-group +pushpool-ecs +absent +create' \
	'dispatcher-policy +pushpool-ecs-dispatcher +absent +create +iam:GetPolicy,.*iam:CreatePolicy' \
	'policy-attachment +user/pushpool-mock-user +absent +create'; do
	echo "$out" | grep -Eq "$want" || fail "plan lacks /$want/: $out"
done
echo "$out" | grep -q 'subnet .*us-east-1d' && fail "more than three zones: $out"
[ "$(changes)" = "{}" ] || fail "plan changed something: $(changes)"

# 2. apply off a terminal without --yes: refused, nothing changed.
rc=0
pp provision apply -p ecs </dev/null >"$T/out" 2>&1 || rc=$?
[ $rc -eq 64 ] || fail "apply without --yes exited $rc: $(cat "$T/out")"
[ "$(changes)" = "{}" ] || fail "a refused apply changed something: $(changes)"

# 3. apply: every resource tagged in its create call, through IAM's
# throttling (HTTP 400 Throttling) and EC2's server errors.
control /control/faults '[{"api": "iam", "throttle_rate": 0.3}, {"api": "ec2", "error_rate": 0.2}]'
out=$(pp provision apply -p ecs --yes </dev/null) || fail "apply failed: $out"
control /control/faults '[{"api": "iam", "throttle_rate": 0}, {"api": "ec2", "error_rate": 0}]'
curl -fsS "$BASE/control/stats" | jq -e '.keyed.injected["iam.throttled"] > 0 and .keyed.injected["ec2.error"] > 0' >/dev/null ||
	fail "no fault was injected: $(curl -fsS "$BASE/control/stats" | jq -c .keyed.injected)"
echo "$out" | grep -q '^\[1/15\] create execution-role pushpool-ecs-execution' || fail "no progress: $out"
echo "$out" | grep -q '^\[15/15\] create policy-attachment' || fail "no last step: $out"
clean=$(state)
echo "$clean" | jq -e '[.[] | select(.tags["pushpool-pool"] == "ecs")] | length == 12' >/dev/null ||
	fail "not 12 tagged resources: $clean"
echo "$clean" | jq -e '.[] | select(.name == "pushpool-ecs-execution") |
	(.attached == ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]) and
	(.inline == ["pushpool-create-log-group"])' >/dev/null || fail "execution role: $clean"
echo "$clean" | jq -e '.[] | select(.name == "pushpool-mock-user") |
	.attached == ["arn:aws:iam::123456789012:policy/pushpool-ecs-dispatcher"]' >/dev/null ||
	fail "the dispatcher's policy is not attached to its user: $clean"
[ "$(untagged)" -eq 4 ] || fail "apply made untagged resources: $(untagged) untagged"
# No tag call after a create: tags travel in the create calls.
changes | jq -e 'keys - ["AssociateRouteTable", "AttachInternetGateway", "AttachRolePolicy",
	"AttachUserPolicy", "CreateCluster", "CreateInternetGateway", "CreateLogGroup", "CreatePolicy",
	"CreateRepository", "CreateRole", "CreateRoute", "CreateRouteTable", "CreateSecurityGroup",
	"CreateSubnet", "CreateVpc", "PutRolePolicy"] == []' >/dev/null || fail "calls: $(changes)"
sg=$(curl -fsS "$BASE/aws/account" | jq -c '.[] | select(.type == "ec2.sg" and .tags["pushpool-pool"] == "ecs") | .description')
echo "$sg" | jq -e '.ipPermissions == [] and .vpcId != "vpc-0planted000000001"' >/dev/null ||
	fail "the security group lets something in or sits in the planted VPC: $sg"
dropin="$T/pushpool.conf.d/50-provision-ecs.conf"
[ -f "$dropin" ] || fail "no drop-in $dropin"
vars=$(sed -n 's/^job_variables = //p' "$dropin")
echo "$vars" | jq -e '(.cluster | endswith(":cluster/pushpool-ecs")) and
	(.execution_role_arn == "arn:aws:iam::123456789012:role/pushpool-ecs-execution") and
	(.network_configuration.subnets | length == 3) and
	(.network_configuration.securityGroups | length == 1) and
	.configure_cloudwatch_logs and .cloudwatch_logs_options["awslogs-group"] == "/pushpool/ecs" and
	.image == "repo/flows:1"' >/dev/null || fail "job variables: $vars"
pp check >/dev/null 2>&1 || fail "check refuses the written configuration: $(pp check 2>&1)"

# 4. a second apply and a plan: nothing to do, nothing changed.
c1=$(changes)
out=$(pp provision apply -p ecs --yes </dev/null) || fail "second apply failed: $out"
echo "$out" | grep -q 'Nothing to do' || fail "second apply had work: $out"
pp provision plan -p ecs >"$T/out" || fail "plan after apply exited $?: $(cat "$T/out")"
[ "$(changes)" = "$c1" ] || fail "counters moved: $c1 -> $(changes)"
[ "$(state)" = "$clean" ] || fail "the account moved: $(state)"

# 4b. changed behind pushpool's back: the role's trust policy and the
# dispatcher policy's document are drifted in the plan and put back by apply.
control /aws/account '{"type": "iam.role", "region": "", "id": "pushpool-ecs-execution", "update": true,
	"description": {"AssumeRolePolicyDocument": "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D"}}'
control /aws/account '{"type": "iam.policy", "region": "", "id": "arn:aws:iam::123456789012:policy/pushpool-ecs-dispatcher",
	"update": true, "extra": {"document": {"v1": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}}}'
rc=0
out=$(pp provision plan -p ecs) || rc=$?
[ $rc -eq 2 ] || fail "plan of a drifted pool exited $rc: $out"
echo "$out" | grep -Eq 'execution-role +pushpool-ecs-execution +drifted +update' || fail "trust drift not seen: $out"
echo "$out" | grep -Eq 'dispatcher-policy +pushpool-ecs-dispatcher +drifted +update' || fail "policy drift not seen: $out"
out=$(pp provision apply -p ecs --yes </dev/null) || fail "apply of the drift: $out"
curl -fsS "$BASE/aws/account" | jq -e '(.[] | select(.id == "pushpool-ecs-execution") | .description.AssumeRolePolicyDocument | test("ecs-tasks")) and
	(.[] | select(.type == "iam.policy") | .description.DefaultVersionId == "v2")' >/dev/null ||
	fail "the drift was not put back: $(curl -fsS "$BASE/aws/account")"
pp provision plan -p ecs >"$T/out" || fail "plan after putting the drift back exited $?: $(cat "$T/out")"
[ "$(state)" = "$clean" ] || fail "the account moved: $(state)"

# 5. the provisioned pool runs a job end to end with only the written config.
out=$(pp run -p ecs --wait 2>&1) || fail "run --wait failed: $out"
echo "$out" | grep -q '^SUCCEEDED' || fail "run did not succeed: $out"

# 6. kill -9 at 10 random points of apply; each re-run ends at the clean state.
# The points are counted in the account's changes, not in seconds: apply is
# killed once it has made K changes (K random in 1..13 of its 21), waited
# for on the mock's counter. Each call of the killed apply takes 100 ms
# more, so the kill lands within a call or two of K and well before the
# apply's end, also when the look at the counter is slow. With 20 ms, a
# clean-clone run beside `make check` and `make chaos-pg` saw only 6 of 10
# kills land before the end (K near 13: the last changes went by between
# two looks).
changed() {
	curl -fsS "$BASE/control/stats" | jq '[(.keyed["aws.changes"] // {})[]] | add // 0'
}
# IAM and EC2 have fault settings of their own (step 3): each is set.
latency() {
	control /control/faults "[{\"api\": \"*\", \"latency_ms\": $1}, {\"api\": \"iam\", \"latency_ms\": $1},
		{\"api\": \"ec2\", \"latency_ms\": $1}]"
}
n=0
interrupted=0
for k in $(awk 'BEGIN { srand(20); for (i = 0; i < 10; i++) printf "%d\n", 1 + int(rand() * 13) }'); do
	n=$((n + 1))
	pp provision destroy -p ecs --yes </dev/null >"$T/out" 2>&1 || fail "destroy $n: $(cat "$T/out")"
	[ "$(state)" = "$before" ] || fail "destroy $n did not restore the account: $(state)"
	from=$(changed)
	latency 100
	"$PUSHPOOL" -c "$T/pushpool.conf" provision apply -p ecs --yes </dev/null >"$T/killed" 2>&1 &
	pid=$!
	i=0
	while [ $(($(changed) - from)) -lt "$k" ] && kill -0 $pid 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 3000 ] && fail "apply $n made fewer than $k changes in 30 s"
		sleep 0.01
	done
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	latency 0
	grep -q '^Wrote' "$T/killed" || interrupted=$((interrupted + 1))
	pp provision apply -p ecs --yes </dev/null >"$T/out" 2>&1 ||
		fail "re-run $n after kill -9 at change $k: $(cat "$T/out")"
	[ "$(state)" = "$clean" ] || fail "kill -9 at change $k, re-run $n: $(state) != $clean"
	[ "$(untagged)" -eq 4 ] || fail "kill -9 at change $k left untagged resources"
done
[ $interrupted -ge 8 ] || fail "only $interrupted of $n kills interrupted an apply"

# A name held by something without the tag stops apply before any change.
cat >>"$T/pushpool.conf" <<EOF

[pool "other"]
type = ecs:push
credentials = aws
endpoint = $BASE/aws/ecs
EOF
c1=$(changes)
rc=0
out=$(pp provision plan -p other) || rc=$?
echo "$out" | grep -Eq 'log-group +/pushpool/other +foreign +blocked' || fail "no foreign log group: $out"
rc=0
pp provision apply -p other --yes </dev/null >"$T/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q 'nothing was changed' "$T/out" || fail "apply over a foreign name: $rc $(cat "$T/out")"
[ "$(changes)" = "$c1" ] || fail "a blocked apply changed something: $c1 -> $(changes)"

# 7. destroy: the account as before; the planted resources untouched.
out=$(pp provision destroy -p ecs --yes </dev/null) || fail "destroy failed: $out"
[ "$(state)" = "$before" ] || fail "destroy left: $(state) (before: $before)"
[ ! -f "$dropin" ] || fail "destroy left the drop-in"
# Without the drop-in the pool has no cluster that exists: RunTask is refused.
rc=0
out=$(pp run -p ecs --wait -v 'network_configuration={"subnets": ["subnet-1"]}' 2>&1) || rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q ClusterNotFoundException || fail "a run without the cluster: $rc $out"
rc=0
pp provision plan -p ecs >/dev/null || rc=$?
[ $rc -eq 2 ] || fail "plan after destroy exited $rc"

# 8. a region with a default VPC: its default subnets, a group in it.
control /control/behaviours '{"name": "aws.default_vpc", "on": true}'
control /control/reset '{}'
out=$(pp provision plan -p ecs) || true
echo "$out" | grep -Eq 'default-vpc +vpc-[0-9a-f]+ +present' || fail "no default VPC in the plan: $out"
echo "$out" | grep -Eq '^[0-9]+ +(vpc|subnet|internet-gateway|route-table) ' && fail "network made beside a default VPC: $out"
pp provision apply -p ecs --yes </dev/null >"$T/out" 2>&1 || fail "apply (default VPC): $(cat "$T/out")"
default_subnets=$(curl -fsS "$BASE/aws/account" | jq -c '[.[] | select(.type == "ec2.subnet" and .description.defaultForAz) | .id] | sort')
sed -n 's/^job_variables = //p' "$dropin" | jq -e --argjson want "$default_subnets" \
	'(.network_configuration.subnets | sort) == $want' >/dev/null || fail "not the default subnets: $(cat "$dropin")"
out=$(pp run -p ecs --wait 2>&1) || fail "run --wait (default VPC) failed: $out"
# What Prefect's provisioner writes: vpc_id and no network_configuration.
# The dispatcher looks the VPC's subnets up (EC2 DescribeSubnets) as
# Prefect's worker does and runs the task on them.
vpc=$(curl -fsS "$BASE/aws/account" | jq -r '.[] | select(.type == "ec2.vpc" and .description.isDefault) | .id')
cluster=$(sed -n 's/^job_variables = //p' "$dropin" | jq -r .cluster)
cat >>"$T/pushpool.conf" <<EOF

[pool "prefect-style"]
type = ecs:push
credentials = aws
endpoint = $BASE/aws/ecs
job_variables = {"image": "repo/flows:1", "vpc_id": "$vpc", "cluster": "$cluster"}
EOF
out=$(pp run -p prefect-style --wait 2>&1) || fail "run --wait with vpc_id alone failed: $out"
curl -fsS "$BASE/control/log" | jq -e '[.[] | select(.action == "DescribeSubnets" and .status == 200)] | length >= 1' >/dev/null ||
	fail "no DescribeSubnets for the vpc_id pool"
curl -fsS "$BASE/control/log" | jq -e '[.[] | select(.api == "ecs" and .action == "RunTask")] | last | .status == 200' >/dev/null ||
	fail "RunTask after the lookup did not succeed"
pp provision destroy -p ecs --yes </dev/null >"$T/out" 2>&1 || fail "destroy (default VPC): $(cat "$T/out")"

# 9. --create-key: a user of its own, whose access key alone runs the job.
out=$(pp provision apply -p ecs --yes --create-key </dev/null) || fail "apply --create-key: $out"
echo "$out" | grep -q 'create access-key pushpool-ecs-dispatcher' || fail "no access key made: $out"
key=$(find "$T/state/provision/ecs" -type f | head -n 1)
[ -n "$key" ] && [ "$(stat -c %a "$key")" = 600 ] || fail "key file missing or not 0600: $key"
grep -q "$SECRET" "$dropin" "$key" && fail "the scenario's own key was written"
grep -q '^credentials = ecs-provisioned' "$dropin" || fail "the pool does not use the new key: $(cat "$dropin")"
out=$(pp run -p ecs --wait 2>&1) || fail "run --wait with the new key failed: $out"
state | jq -e '.[] | select(.name == "pushpool-ecs-dispatcher" and .type == "iam.user") |
	.tags["pushpool-pool"] == "ecs"' >/dev/null || fail "the user is not tagged: $(state)"
keys() {
	curl -fsS "$BASE/aws/account" | jq -c '[.[] | select(.type == "iam.accesskey") | .id] | sort'
}
k1=$(keys)
# Apply again: the key file's key is kept and the drop-in still names it.
out=$(pp provision apply -p ecs --yes --create-key --credentials aws </dev/null) ||
	fail "second apply --create-key: $out"
echo "$out" | grep -q 'Nothing to do' || fail "second apply --create-key had work: $out"
[ "$(keys)" = "$k1" ] || fail "the key changed: $k1 -> $(keys)"
grep -q '^credentials = ecs-provisioned' "$dropin" || fail "the re-apply dropped the key: $(cat "$dropin")"
# A key whose secret this host lost (the file gone, as after an apply
# killed before writing it): replaced, never two keys.
rm -f "$key"
out=$(pp provision apply -p ecs --yes --create-key --credentials aws </dev/null) ||
	fail "apply after losing the key file: $out"
echo "$out" | grep -q 'without a key file here' || fail "the lost key was not reported: $out"
[ "$(keys | jq length)" -eq 1 ] && [ "$(keys)" != "$k1" ] || fail "key not replaced: $k1 -> $(keys)"
out=$(pp run -p ecs --wait 2>&1) || fail "run --wait with the replaced key failed: $out"
# check warns when the key file apply wrote gets old.
touch -d '100 days ago' "$key"
pp check >"$T/out" 2>&1 || fail "check with an old key: $(cat "$T/out")"
grep -q 'days old; rotate it' "$T/out" || fail "no warning about the old key: $(cat "$T/out")"
# destroy finds the user and its key without --create-key.
pp provision destroy -p ecs --yes --credentials aws </dev/null >"$T/out" 2>&1 ||
	fail "destroy of the keyed pool: $(cat "$T/out")"
state | jq -e 'map(select(.type == "iam.user" or .type == "iam.accesskey")) | length == 1' >/dev/null ||
	fail "the user or its key survived destroy: $(state)"

# 10. keyless, provisioning as another identity: the policy goes to the
# pool's own (a role session from the container credentials endpoint),
# not to the one provisioning runs as.
cat >>"$T/pushpool.conf" <<EOF

[credentials "task"]
type = aws
source = container
container_endpoint = $BASE/aws/container-credentials
region = us-east-1

[pool "roled"]
type = ecs:push
credentials = task
endpoint = $BASE/aws/ecs
EOF
export AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/task
out=$(pp provision apply -p roled --yes --credentials aws </dev/null 2>&1) || fail "apply as another: $out"
echo "$out" | grep -q 'create policy-attachment role/pushpool-mock-role' || fail "not granted to the role: $out"
state | jq -e '(.[] | select(.name == "pushpool-mock-role") | .attached ==
	["arn:aws:iam::123456789012:policy/pushpool-roled-dispatcher"]) and
	(.[] | select(.name == "pushpool-mock-user") | .attached == [])' >/dev/null ||
	fail "the grant went elsewhere: $(state)"
pp provision destroy -p roled --yes --credentials aws </dev/null >"$T/out" 2>&1 ||
	fail "destroy as another: $(cat "$T/out")"
state | jq -e '.[] | select(.name == "pushpool-mock-role") | .attached == []' >/dev/null ||
	fail "the role keeps the policy: $(state)"
# 11. pool create --provision-infra, as Prefect users type it.
out=$(pp pool create etl --type ecs:push --credentials aws --endpoint "$BASE/aws/ecs" \
	--provision-infra --yes </dev/null 2>&1) || fail "pool create: $out"
[ -f "$T/pushpool.conf.d/40-pool-etl.conf" ] || fail "no pool section written"
state | jq -e '.[] | select(.type == "ecs.cluster" and .name == "pushpool-etl") | .tags["pushpool-pool"] == "etl"' >/dev/null ||
	fail "pool create did not provision: $(state)"
pp provision destroy -p etl --yes </dev/null >"$T/out" 2>&1 || fail "destroy etl: $(cat "$T/out")"
echo "ok   provision_aws: plan, apply (15 steps, all tagged at create), idempotent re-apply, $n kill -9 re-runs ($interrupted mid-apply), destroy keeping 4 planted, a foreign name blocking apply, run --wait, default VPC, vpc_id lookup, --create-key, keyless as another identity, pool create, trust and policy drift put back"
