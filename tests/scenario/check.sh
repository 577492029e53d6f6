#!/bin/sh
# `pushpool check`: exit codes 0 / 78 / 66 / 64, every problem as FILE:LINE,
# warnings, env overrides, secrets kept out of the output, and the global
# options of the entry point (--version, help, -c, unknown command).
set -eu
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export STATE_DIRECTORY="$T/state"
unset PUSHPOOL_CONFIG
checks=0
fail() {
	echo "FAIL: $*" >&2
	[ -f "$T/out" ] && sed 's/^/  out: /' "$T/out" >&2
	[ -f "$T/err" ] && sed 's/^/  err: /' "$T/err" >&2
	exit 1
}
# run EXPECTED_STATUS [VAR=VALUE...] ARGS...: run pushpool with those
# variables, keep stdout/stderr in $T/out, $T/err
run() {
	want=$1
	shift
	vars=
	while [ $# -gt 0 ]; do
		case $1 in
		-*) break ;;
		*=*) vars="$vars $1" && shift ;;
		*) break ;;
		esac
	done
	rc=0
	env $vars "$PUSHPOOL" "$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -eq "$want" ] || fail "pushpool $*: exit $rc, want $want"
	checks=$((checks + 1))
}
has() { grep -qF -- "$2" "$T/$1" || fail "$1 lacks: $2"; checks=$((checks + 1)); }
lacks() { ! grep -qF -- "$2" "$T/$1" || fail "$1 has: $2"; checks=$((checks + 1)); }

# --- entry point
run 0 --version
grep -Eq '^pushpool [0-9]+\.[0-9]+\.[0-9]+$' "$T/out" || fail "--version: $(cat "$T/out")"
run 0 --help
has out "check "
has out "usage: pushpool [-c FILE] COMMAND"
run 0 help
has out "check "
run 0 help check
has out "usage: pushpool check"
run 64 no-such-command
has err 'unknown command "no-such-command"'
run 64
run 64 --bogus-option check
run 64 -c
run 64 check --no-such-flag
run 64 check extra-argument
run 64 check --markdown

# --- a valid configuration, with a template and a credentials file
cat >"$T/tmpl.json" <<'EOF'
{"job_configuration": {"command": "{{ command }}"},
 "variables": {"type": "object", "properties": {"command": {"type": "string"}}}}
EOF
printf '{"type": "service_account"}\n' >"$T/sa.json"
chmod 600 "$T/sa.json"
cat >"$T/good.conf" <<'EOF'
; a configuration with every kind of section
[dispatcher]
log_level = debug
max_in_flight = 10
poll_interval = 500ms

[store]
url = sqlite:state/pushpool.db

[source "prefect"]
api_url = http://127.0.0.1:4200/api
api_key = pnu_SCENARIOSECRETKEY0123456789
pools = cr

[pool "cr"]
type = cloud-run-v2
credentials = gcp
template_path = tmpl.json
job_variables = {"env": {"A": "1"}}

[pool "ecs"]
type = ecs:push
credentials = aws

[credentials "gcp"]
type = gcp
source = file
file = sa.json

[credentials "aws"]
type = aws
source = static
access_key_id = AKIDSCENARIO
secret_access_key = SCENARIOSECRETACCESSKEY/abcdefghij
EOF
run 0 check -c "$T/good.conf"
has out "configuration OK"
run 0 -c "$T/good.conf" check -n
has out "configuration OK"
run 0 PUSHPOOL_CONFIG="$T/good.conf" check -q
[ ! -s "$T/out" ] || fail "check -q printed: $(cat "$T/out")"

# --print shows the effective configuration, secrets redacted.
run 0 PUSHPOOL_DISPATCHER_MAX_SUBMITTING=3 check -c "$T/good.conf" --print
has out "max_submitting = 3"
has out "api_key = [REDACTED]"
has out "secret_access_key = [REDACTED]"
has out "template_path = $T/tmpl.json"
lacks out "SCENARIOSECRET"

# The same file run from elsewhere: relative paths follow the file.
(cd / && "$PUSHPOOL" check -c "$T/good.conf" >/dev/null) || fail "relative paths depend on cwd"
checks=$((checks + 1))

# A group-readable credentials file is a warning, not an error.
chmod 644 "$T/sa.json"
run 0 check -c "$T/good.conf"
has err "good.conf:25: warning: credentials \"gcp\": file $T/sa.json is readable by group/others (mode 0644); chmod 600"
has out "configuration OK"
chmod 600 "$T/sa.json"

# --- environment overrides, good and bad
run 78 PUSHPOOL_DISPATCHER_MAX_IN_FLIGHT=0 check -c "$T/good.conf"
has err "environment: PUSHPOOL_DISPATCHER_MAX_IN_FLIGHT: 0 is out of range: must be 1..1000000"
run 78 PUSHPOOL_POOL_CR_TYPE=lambda check -c "$T/good.conf"
has err 'environment: PUSHPOOL_POOL_CR_TYPE: unknown pool type "lambda"'
run 0 PUSHPOOL_CREDENTIALS_GCP_SOURCE=metadata check -c "$T/good.conf"

# --- [deployment] and [schedule] sections, checked as deploy applies them
cp "$T/good.conf" "$T/dep.conf"
L=$(($(wc -l <"$T/good.conf") + 1))
cat >>"$T/dep.conf" <<'EOF'
[deployment "etl"]
pool = cr
cron = 30 2 * * *
timezone = Europe/Berlin
[schedule "weekly"]
deployment = etl
interval = 1d
EOF
run 0 check -c "$T/dep.conf"
has out "configuration OK"
run 78 PUSHPOOL_DEPLOYMENT_ETL_TIMEZONE=Mars/Base check -c "$T/dep.conf"
has err "$T/dep.conf:$L: deployment \"etl\": schedule: "
has err "Mars/Base"
run 78 PUSHPOOL_SCHEDULE_WEEKLY_DEPLOYMENT=nope check -c "$T/dep.conf"
has err "$T/dep.conf:$((L + 4)): [schedule \"weekly\"] deployment: no [deployment \"nope\"] section"
run 78 PUSHPOOL_DEPLOYMENT_ETL_POOL=gone check -c "$T/dep.conf"
has err "deployment \"etl\": work pool \"gone\" is not a [pool \"gone\"] section"

# --- every error at once, each with FILE:LINE, exit 78
cat >"$T/bad.conf" <<'EOF'
[dispatcher]
max_in_flite = 5
log_format = yaml
lease_seconds = 1
[pool "cr"]
type = cloud-run-v2
credentials = nowhere
[pool "cr"]
type = ecs
[pool "m"]
type = modal:push
credentials = aws
template_path = missing.json
[credentials "aws"]
type = aws
source = static
secret_access_key = BADCONFSECRETKEYVALUE-123456
[sorce "prefect"]
EOF
run 78 check -c "$T/bad.conf"
B="$T/bad.conf"
has err "$B:2: unknown key \"max_in_flite\" in [dispatcher]; did you mean \"max_in_flight\"?"
has err "$B:3: log_format: \"yaml\" is not one of: text, json"
has err "$B:4: lease_seconds: 1 is out of range: must be 5..86400 seconds"
has err "$B:8: duplicate [pool \"cr\"] (first defined at line 5)"
has err "$B:18: unknown section [sorce \"prefect\"]; did you mean [source]?"
lacks out "configuration OK"
lacks err "BADCONFSECRETKEYVALUE"

# Load errors stop before the cross-checks; fix them and the rest show up.
sed -i -e '2,4d' -e '8,9d' -e '$d' "$B"
run 78 check -c "$B"
has err "$B:2: pool \"cr\": credentials \"nowhere\" is not defined"
has err "$B:5: pool \"m\": type modal:push needs modal credentials, but \"aws\" is aws"
has err "$B:5: pool \"m\": template_path: $T/missing.json"
has err "$B:9: credentials \"aws\": source static needs access_key_id and secret_access_key"
lacks err "BADCONFSECRETKEYVALUE"

# --- no file: exit 66 (EX_NOINPUT)
run 66 check -c "$T/nonexistent.conf"
has err "$T/nonexistent.conf: cannot open: No such file or directory"

# --- documentation of every key
run 0 check --print-defaults
has out "[dispatcher]"
has out ";max_in_flight = 1000"
has out "[credentials \"NAME\"]"
has out "PUSHPOOL_STORE_URL"
run 0 check --print-defaults --markdown
has out '| `max_in_flight` | integer 1..1000000 | `1000` | `PUSHPOOL_DISPATCHER_MAX_IN_FLIGHT` |'
# The printed defaults are a configuration that checks clean (named
# sections stay as comments: they have required keys).
"$PUSHPOOL" check --print-defaults | sed '/^\[pool/,$d; /^\[source/,$d; s/^;//' >"$T/defaults.conf"
run 0 check -c "$T/defaults.conf"
has out "configuration OK"

# examples/pushpool.conf checks clean once the files it names exist.
if [ -f examples/pushpool.conf ]; then
	mkdir -p "$T/etc/templates"
	for f in gcp-sa.json azure-client-secret modal.toml prefect-api-key; do
		echo secret >"$T/etc/$f"
		chmod 600 "$T/etc/$f"
	done
	cp "$T/tmpl.json" "$T/etc/templates/ecs.json"
	sed "s|/etc/pushpool|$T/etc|" examples/pushpool.conf >"$T/example.conf"
	run 0 check -c "$T/example.conf"
	has out "configuration OK"
	lacks err "warning"
fi

# docs/config.md is this output; regenerate it when a key changes.
if [ -f docs/config.md ]; then
	"$PUSHPOOL" check --print-defaults --markdown | diff -u docs/config.md - >"$T/out" ||
		fail "docs/config.md is stale: pushpool check --print-defaults --markdown > docs/config.md"
	checks=$((checks + 1))
fi

echo "check.sh: $checks checks passed"
