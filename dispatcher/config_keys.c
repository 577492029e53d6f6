/* The key table: every section and key of the configuration with its type,
 * default, range and description. Parsing, environment overrides,
 * validation, --print-defaults and the docs all walk it. */
#include <stddef.h>

#include <string.h>

#include "auth/auth.h"
#include "dispatcher/config_impl.h"
#include "dispatcher/deploy_impl.h"

const struct section_def config_sections[SEC_COUNT] = {
	[SEC_DISPATCHER] = {"dispatcher", "DISPATCHER", false, "The dispatcher process."},
	[SEC_STORE] = {"store", "STORE", false, "Where runs and their state are kept."},
	[SEC_PREFECT] = {"source \"prefect\"", "SOURCE_PREFECT", false,
			 "Take scheduled flow runs from a Prefect server and report back to it. "
			 "The section's presence enables the source."},
	[SEC_POOL] = {"pool \"NAME\"", "POOL", true,
		      "A push work pool: where runs of this pool are submitted. Repeatable."},
	[SEC_CREDS] = {"credentials \"NAME\"", "CREDENTIALS", true,
		       "Cloud credentials a pool refers to by name. Repeatable."},
	[SEC_DEPLOYMENT] = {"deployment \"NAME\"", "DEPLOYMENT", true,
			    "A deployment, as a prefect.yaml `deployments:` entry declares one, "
			    "applied by `pushpool deploy` (docs/deployments-file.md). Its own "
			    "cron, interval or rrule key is its first schedule; [schedule] "
			    "sections add more. Repeatable."},
	[SEC_SCHEDULE] = {"schedule \"NAME\"", "SCHEDULE", true,
			  "One more schedule of a [deployment]: any number may name the same "
			  "deployment. Repeatable."},
};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const collisions[] = {"enqueue", "cancel_new", NULL};
#define DEFAULT_STATE_DIR "/var/lib/pushpool"
#define NO_RANGE	  0, 0

const struct key_def config_keys[] = {
	{DSP(state_dir, char *), T_PATH, DEFAULT_STATE_DIR, NO_RANGE, NULL, false,
	 "Directory for the SQLite store and runtime state. Default: $STATE_DIRECTORY (as set by "
	 "systemd) when set, else " DEFAULT_STATE_DIR "."},
	{DSP(log_level, char *), T_ENUM, "info", NO_RANGE, log_levels, false,
	 "Least severe log level written."},
	{DSP(log_format, char *), T_ENUM, "text", NO_RANGE, log_formats, false,
	 "Log lines as text or as one JSON object per line. serve and once write the debug and "
	 "info lines of a loop turn together when it commits (a turn lasts milliseconds), "
	 "warnings and errors at once."},
	{DSP(metrics_listen, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "HOST:PORT for the Prometheus /metrics and /healthz endpoint; empty disables it."},
	{DSP(ui, bool), T_BOOL, "true", NO_RANGE, NULL, false,
	 "Serve the read-only status page (/) and its JSON (/api/) on metrics_listen "
	 "(docs/ui.md). When metrics_listen is not a loopback address, the page is only served "
	 "with ui_token_file set."},
	{DSP(ui_token_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "File holding the token the status page asks for (as a Bearer token, or the password "
	 "of Basic authentication); required for the page when metrics_listen is not loopback."},
	{DSP(ca_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "PEM file of the certificate authorities HTTPS requests trust instead of the system's: "
	 "a private authority, or a proxy that re-signs TLS. Certificates are still verified. "
	 "Every request of the process, to clouds, token endpoints and Prefect alike. Read at "
	 "start: a reload that changes it warns and keeps the first until a restart."},
	{DSP(max_in_flight, long), T_INT, "1000", 1, 1000000, NULL, false,
	 "Most runs submitted and not yet finished, over all pools."},
	{DSP(max_submitting, long), T_INT, "64", 1, 10000, NULL, false,
	 "Most submissions under way at once."},
	{DSP(poll_interval, double), T_SECONDS, "1.0", 0.01, 3600, NULL, false,
	 "Seconds between store polls for due runs when idle."},
	{DSP(status_interval, double), T_SECONDS, "2.0", 0.1, 3600, NULL, false,
	 "Seconds between status polls of one submitted run (unless its job sets "
	 "its own pace); runs one request can poll together (ECS, 100 a call) are "
	 "polled up to half of it early, with others."},
	{DSP(lease_seconds, double), T_SECONDS, "60", 5, 86400, NULL, false,
	 "Lease on a claimed run; another dispatcher may take it over once it lapses."},
	{DSP(grace_seconds, double), T_SECONDS, "30", 0, 3600, NULL, false,
	 "On SIGTERM, time allowed for submissions under way to finish."},
	{DSP(submit_attempts, long), T_INT, "5", 1, 100, NULL, false,
	 "Attempts to submit one run before it is marked failed."},
	{DSP(backoff_base_ms, long), T_INT, "500", 1, 3600000, NULL, false,
	 "First retry delay in milliseconds; doubles per attempt, with jitter."},
	{DSP(backoff_max_ms, long), T_INT, "30000", 1, 86400000, NULL, false,
	 "Longest retry delay in milliseconds."},
	{DSP(start_timeout, double), T_SECONDS, "600", 0, 604800, NULL, false,
	 "Seconds a run may stay queued or provisioning in the cloud before it is failed; "
	 "0 waits forever."},
	{DSP(sweep_interval, double), T_SECONDS, "600", 0, 86400, NULL, false,
	 "Seconds between sweeps that remove remote objects labelled with this store's id "
	 "whose run is finished or unknown to the store, once older than 10 minutes (also "
	 "once at the end of `once`); 0 disables. Objects of other stores, and objects with "
	 "no store label (from `pushpool run` or an older pushpool), are left alone."},
	{DSP(prefect_api_url, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Passed to every job as PREFECT_API_URL when set."},
	{DSP(prefect_api_key_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "File holding the key passed to every job as PREFECT_API_KEY."},

	{STO(url, char *), T_STORE_URL, NULL, NO_RANGE, NULL, false,
	 "sqlite:PATH, a plain path, or postgresql://USER:PASSWORD@HOST/DB. "
	 "Empty: STATE_DIR/pushpool.db. A password in the URL is redacted from logs."},

	{PFT(enabled, bool), T_BOOL, "true", NO_RANGE, NULL, false,
	 "false keeps the section but stops taking runs from Prefect."},
	{PFT(api_url, char *), T_STRING, NULL, NO_RANGE, NULL, true,
	 "Prefect API base URL, e.g. http://127.0.0.1:4200/api."},
	{PFT(api_key, char *), T_SECRET, NULL, NO_RANGE, NULL, false,
	 "Prefect Cloud API key (prefer api_key_file)."},
	{PFT(api_key_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "File holding the Prefect API key."},
	{PFT(api_auth_string_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "File holding the \"user:password\" of a self-hosted server run with "
	 "PREFECT_SERVER_API_AUTH_STRING: sent as Basic auth (before any key), and passed to "
	 "jobs as PREFECT_API_AUTH_STRING. Without it, $PREFECT_API_AUTH_STRING."},
	{PFT(pools, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Comma-separated work pools to serve; empty: every [pool] section."},
	{PFT(work_queues, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Comma-separated work queues to take runs from; empty: all."},
	{PFT(lookahead_seconds, double), T_SECONDS, "10", 0, 3600, NULL, false,
	 "Take runs scheduled up to this far in the future."},
	{PFT(poll_interval, double), T_SECONDS, "5", 0.1, 3600, NULL, false,
	 "Seconds between polls of the Prefect API."},
	{PFT(claim_timeout, double), T_SECONDS, "600", 1, 86400, NULL, false,
	 "A flow run PENDING this long with no infrastructure_pid and in no live run of this "
	 "store (a claimer died before recording it) is taken over: claimed here with a "
	 "compare-and-set that fails if the flow has started meanwhile."},

	{POOL(type, char *), T_POOL_TYPE, NULL, NO_RANGE, NULL, true,
	 "Pool type: cloud-run-v2:push, ecs:push, azure-container-instance:push, modal:push "
	 "(the worker names cloud-run-v2, ecs, azure-container-instance are accepted)."},
	{POOL(template_path, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "Base job template (Prefect JSON); empty: the built-in default for the type."},
	{POOL(credentials, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Name of the [credentials \"NAME\"] section to authenticate with."},
	{POOL(endpoint, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "API base URL override (private endpoints, the mock)."},
	{POOL(job_variables, char *), T_JSON_OBJECT, NULL, NO_RANGE, NULL, false,
	 "JSON object of job variables for every run of the pool, on one line."},
	{POOL(max_in_flight, long), T_INT, "0", 0, 1000000, NULL, false,
	 "Most unfinished runs of this pool; 0: only the global cap."},
	{POOL(max_submitting, long), T_INT, "0", 0, 10000, NULL, false,
	 "Most submissions of this pool under way at once; 0: only the global cap."},
	{POOL(max_runtime, double), T_SECONDS, "0", 0, 604800, NULL, false,
	 "Longest a run may run once its cloud reports it started; past it the job is cancelled in "
	 "the cloud and the run ends FAILED (\"max_runtime 10m exceeded\"). The job variable "
	 "max_runtime (seconds) overrides it per deployment or run. Where the cloud has a native "
	 "limit (Cloud Run task timeout, Modal sandbox timeout) and the job sets none, it is set "
	 "from this too. 0: no limit."},
	{POOL(start_retries, long), T_INT, "0", 0, 20, NULL, false,
	 "Times a run whose job failed to start is started again, as a new remote object per "
	 "attempt, when the failure's class is in start_retry_on; 0: a start failure ends the run "
	 "CRASHED at once."},
	{POOL(start_retry_on, char *), T_STRING, "image_pull, capacity, resource_init", NO_RANGE,
	 NULL, false,
	 "Start failure classes retried: image_pull, capacity, spot_interruption, resource_init, "
	 "other (which cloud reason is which: docs/dispatch.md). spot_interruption is not in "
	 "the default: the flow may have run part way before the interruption."},
	{POOL(start_retry_backoff, double), T_SECONDS, "10", 0, 3600, NULL, false,
	 "Delay before the first start retry is drawn from 0 to this (full jitter); the bound "
	 "doubles per attempt up to start_retry_backoff_max."},
	{POOL(start_retry_backoff_max, double), T_SECONDS, "300", 0, 86400, NULL, false,
	 "Largest bound of the start retry delay."},

	{CRED(type, char *), T_ENUM, NULL, NO_RANGE, NULL, true, "Which cloud."},
	{CRED(source, char *), T_ENUM, "chain", NO_RANGE, NULL, false,
	 "Where credentials come from: chain tries the cloud's usual sources in order."},
	{CRED(file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "Credentials file: GCP service-account JSON, AWS shared credentials, ~/.modal.toml."},
	{CRED(profile, char *), T_STRING, NULL, NO_RANGE, NULL, false, "AWS or Modal profile."},
	{CRED(region, char *), T_STRING, NULL, NO_RANGE, NULL, false, "AWS region."},
	{CRED(access_key_id, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS access key id (source static)."},
	{CRED(secret_access_key, char *), T_SECRET, NULL, NO_RANGE, NULL, false,
	 "AWS secret access key (source static)."},
	{CRED(session_token, char *), T_SECRET, NULL, NO_RANGE, NULL, false,
	 "AWS session token for temporary credentials."},
	{CRED(role_arn, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS role to assume (web_identity)."},
	{CRED(tenant_id, char *), T_STRING, NULL, NO_RANGE, NULL, false, "Entra ID tenant."},
	{CRED(client_id, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Entra ID application (client) id."},
	{CRED(client_secret, char *), T_SECRET, NULL, NO_RANGE, NULL, false,
	 "Entra ID client secret (prefer client_secret_file)."},
	{CRED(client_secret_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "File holding the Entra ID client secret."},
	{CRED(client_secret_expires, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "When the client secret ends (RFC 3339; written by provision apply --create-key): check "
	 "warns 30 days before."},
	{CRED(certificate_path, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "PEM certificate with private key (source certificate)."},
	{CRED(subscription_id, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Azure subscription."},
	{CRED(token_id, char *), T_STRING, NULL, NO_RANGE, NULL, false, "Modal token id."},
	{CRED(token_secret, char *), T_SECRET, NULL, NO_RANGE, NULL, false, "Modal token secret."},
	{CRED(token_uri, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "GCP OAuth token endpoint override."},
	{CRED(metadata_host, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "GCP metadata server host override."},
	{CRED(sts_endpoint, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS STS endpoint override."},
	{CRED(authority, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Entra ID authority host override (sovereign clouds)."},
	{CRED(imds_endpoint, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS or Azure instance metadata endpoint override."},
	{CRED(container_endpoint, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS container credentials endpoint override."},
	{CRED(modal_server_url, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Modal API server override."},

	{DEP(pool, char *), T_STRING, NULL, NO_RANGE, NULL, true,
	 "The [pool] its runs go to (prefect.yaml's work_pool.name)."},
	{DEP(queue, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Work queue of the pool (work_pool.work_queue_name); empty: the pool's default."},
	{DEP(description, char *), T_STRING, NULL, NO_RANGE, NULL, false, "Free text."},
	{DEP(entrypoint, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "The flow's entrypoint, e.g. flows/etl.py:main; kept with the deployment."},
	{DEP(job_variables, char *), T_JSON_OBJECT, NULL, NO_RANGE, NULL, false,
	 "JSON object of job variables for its runs (over the pool's), on one line."},
	{DEP(parameters, char *), T_JSON_OBJECT, NULL, NO_RANGE, NULL, false,
	 "JSON object of flow parameters for its runs, on one line."},
	{DEP(parameter_schema_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "JSON schema file (Prefect's parameter_openapi_schema) the parameters must match."},
	{DEP(tags, char *), T_STRING, NULL, NO_RANGE, NULL, false, "Comma-separated tags."},
	{DEP(paused, bool), T_BOOL, "false", NO_RANGE, NULL, false,
	 "true: declared, but no scheduled runs."},
	{DEP(concurrency_limit, long), T_INT, "0", 0, 1000000, NULL, false,
	 "Most unfinished runs of this deployment, store-wide; 0: no limit."},
	{DEP(collision_strategy, char *), T_ENUM, "enqueue", NO_RANGE, collisions, false,
	 "At the limit, a new run waits (enqueue) or is cancelled (cancel_new)."},
	{DEP(cron, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Cron schedule, 5 fields (docs/schedules.md), e.g. 0 7 * * 1-5."},
	{DEP(interval, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Interval schedule: seconds or a duration (90s, 15m, 1h, 1d, PT1H, 01:00:00)."},
	{DEP(rrule, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "RFC 5545 recurrence rule, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9, optionally after a "
	 "DTSTART line."},
	{DEP(timezone, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "IANA time zone of the schedule; empty: UTC."},
	{DEP(anchor_date, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Interval only: an instant a slot falls on (with Z or an offset), or a time on the "
	 "schedule's clock (without); empty: 2020-01-01T00:00 on that clock."},
	{DEP(day_or, bool), T_BOOL, "true", NO_RANGE, NULL, false,
	 "Cron only: a day matching day-of-month OR day-of-week runs (false: both must match)."},
	{DEP(active, bool), T_BOOL, "true", NO_RANGE, NULL, false,
	 "false keeps the schedule but stops its runs."},
	{DEP(catchup, char *), T_ENUM, "skip", NO_RANGE, deploy_catchup_names, false,
	 "Slots missed while no dispatcher ran: skip them, run the latest, or all within "
	 "catchup_window."},
	{DEP(catchup_window, double), T_SECONDS, "0", 0, 8640000, NULL, false,
	 "catchup = all: how far back missed slots still run; 0: the scheduler's default."},
	{DEP(overlap, char *), T_ENUM, "allow", NO_RANGE, deploy_overlap_names, false,
	 "A slot due while the deployment's previous run is unfinished: allow it, skip it, "
	 "buffer_one (keep one waiting), or cancel_other (cancel the unfinished run)."},

	{SCH(deployment, char *), T_STRING, NULL, NO_RANGE, NULL, true,
	 "The [deployment] this schedule belongs to."},
	{SCH(cron, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Cron schedule, 5 fields (docs/schedules.md), e.g. 0 7 * * 1-5."},
	{SCH(interval, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Interval schedule: seconds or a duration (90s, 15m, 1h, 1d, PT1H, 01:00:00)."},
	{SCH(rrule, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "RFC 5545 recurrence rule, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9, optionally after a "
	 "DTSTART line."},
	{SCH(timezone, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "IANA time zone of the schedule; empty: UTC."},
	{SCH(anchor_date, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Interval only: an instant a slot falls on (with Z or an offset), or a time on the "
	 "schedule's clock (without); empty: 2020-01-01T00:00 on that clock."},
	{SCH(day_or, bool), T_BOOL, "true", NO_RANGE, NULL, false,
	 "Cron only: a day matching day-of-month OR day-of-week runs (false: both must match)."},
	{SCH(active, bool), T_BOOL, "true", NO_RANGE, NULL, false,
	 "false keeps the schedule but stops its runs."},
	{SCH(catchup, char *), T_ENUM, "skip", NO_RANGE, deploy_catchup_names, false,
	 "Slots missed while no dispatcher ran: skip them, run the latest, or all within "
	 "catchup_window."},
	{SCH(catchup_window, double), T_SECONDS, "0", 0, 8640000, NULL, false,
	 "catchup = all: how far back missed slots still run; 0: the scheduler's default."},
	{SCH(overlap, char *), T_ENUM, "allow", NO_RANGE, deploy_overlap_names, false,
	 "A slot due while the deployment's previous run is unfinished: allow it, skip it, "
	 "buffer_one (keep one waiting), or cancel_other (cancel the unfinished run)."},
	{SCH(parameters, char *), T_JSON_OBJECT, NULL, NO_RANGE, NULL, false,
	 "JSON object of parameters over the deployment's, for this schedule's runs."},
};

const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);
_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) <= CONFIG_KEYS_MAX,
	       "raise CONFIG_KEYS_MAX");

const struct key_from_registry config_keys_from_registries[] = {
	{SEC_CREDS, "type", pp_cred_type_names, NULL},
	{SEC_CREDS, "source", pp_cred_source_names, pp_cred_sources_by_type},
	{SEC_COUNT, NULL, NULL, NULL},
};

const struct key_from_registry *config_key_registry(const struct key_def *k)
{
	for (const struct key_from_registry *r = config_keys_from_registries; r->name; r++)
		if (r->sec == k->sec && !strcmp(r->name, k->name))
			return r;
	return NULL;
}

const char *const *config_key_choices(const struct key_def *k)
{
	const struct key_from_registry *r = k->choices ? NULL : config_key_registry(k);
	return r ? r->choices() : k->choices;
}
