/* Configuration: an INI file whose every key is declared (type, default,
 * validation) in one table in config.c; that table drives parsing, env-var
 * overrides (PUSHPOOL_<SECTION>_<KEY>), `check` and `--print-defaults`. */
#ifndef PP_CONFIG_H
#define PP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/err.h"

#define PP_NAME_MAX 64

struct pp_dispatcher_conf {
	char *state_dir;	/* default /var/lib/pushpool, or $STATE_DIRECTORY */
	char *log_level;	/* debug|info|warn|error */
	char *log_format;	/* text|json */
	char *metrics_listen;	/* "127.0.0.1:9464"; empty disables */
	bool ui;		/* status page on metrics_listen */
	char *ui_token_file;	/* the page's token; needed off loopback */
	char *ca_file;		/* PEM authorities HTTPS trusts instead of the system's */
	long max_in_flight;	/* global cap on runs submitted and not terminal */
	long max_submitting;	/* global cap on submissions under way */
	double poll_interval;	/* seconds between store polls when idle */
	double status_interval; /* seconds between status polls of a run */
	double lease_seconds;
	double grace_seconds; /* SIGTERM: finish submissions within this */
	long submit_attempts; /* per run, before it is marked dead */
	long backoff_base_ms;
	long backoff_max_ms;
	double start_timeout;  /* seconds a run may stay queued/provisioning remotely */
	double sweep_interval; /* seconds between sweeps for orphaned remote objects; 0: none */
	char *prefect_api_url; /* injected into jobs as PREFECT_API_URL when set */
	char *prefect_api_key_file;
};

struct pp_store_conf {
	char *url; /* "sqlite:PATH", a plain path, or "postgresql://..."; default STATE_DIR/pushpool.db */
};

struct pp_prefect_conf {
	bool enabled; /* a [source "prefect"] section is present */
	char *api_url;
	char *api_key; /* secret */
	char *api_key_file;
	/* PREFECT_SERVER_API_AUTH_STRING of a self-hosted server, for Basic auth */
	char *api_auth_string_file;
	char *pools;	   /* comma list; empty: every [pool] */
	char *work_queues; /* comma list; empty: all */
	double lookahead_seconds;
	double poll_interval;
	double claim_timeout; /* seconds a claim may stay PENDING without infrastructure */
};

struct pp_pool_conf {
	char name[PP_NAME_MAX];
	char *type;	     /* e.g. "ecs:push" */
	char *template_path; /* user's base job template file; empty: built-in default */
	char *credentials;   /* name of a [credentials] section */
	char *endpoint;	     /* API base URL override (mock, private endpoints) */
	char *job_variables; /* JSON object of pool-level variable overrides */
	long max_in_flight;  /* 0: no per-pool cap */
	long max_submitting; /* 0: no per-pool cap */
	const char *file;    /* config file and line of the section header */
	int line;

	/* Run time and start retries (docs/dispatch.md). */
	double max_runtime;		/* seconds a started run may run; 0: no limit */
	long start_retries;		/* further starts after a start failure */
	char *start_retry_on;		/* start failure classes retried, comma-separated */
	double start_retry_backoff;	/* seconds: first retry delay bound, doubling */
	double start_retry_backoff_max; /* seconds: cap of the retry delay bound */
};

struct pp_cred_conf {
	char name[PP_NAME_MAX];
	char *type;    /* gcp|aws|azure|modal */
	char *source;  /* chain (default) or a single source: env, file, metadata, static,
				  web_identity, profile, container, imds, secret, certificate,
				  workload_identity, managed_identity, token */
	char *file;    /* service-account JSON, ~/.modal.toml, ... */
	char *profile; /* AWS profile / Modal profile */
	char *region;  /* AWS */
	char *access_key_id;
	char *secret_access_key; /* secret */
	char *session_token;	 /* secret */
	char *role_arn;
	char *tenant_id;
	char *client_id;
	char *client_secret; /* secret */
	char *client_secret_file;
	char *client_secret_expires; /* RFC 3339: when the secret ends (check warns) */
	char *certificate_path;
	char *subscription_id;
	char *token_id;
	char *token_secret; /* secret */
	/* endpoint overrides, for tests and sovereign clouds */
	char *token_uri;
	char *metadata_host;
	char *sts_endpoint;
	char *authority;
	char *imds_endpoint;
	char *container_endpoint;
	char *modal_server_url;
	/* Not a configuration key: a service account's JSON itself, from a
	 * job's credentials block (pp_cred_from_job). */
	char *key_json;
	const char *file_name;
	int line;
};

/* A [deployment "NAME"] section: a deployment as prefect.yaml declares one
 * (dispatcher/deploy_config.c reads it into a struct pp_deploy_spec). Its
 * own keys cron, interval or rrule make its first schedule; [schedule]
 * sections add more. */
struct pp_deploy_conf {
	char name[PP_NAME_MAX];
	char *pool;
	char *queue;
	char *description;
	char *entrypoint;
	char *job_variables; /* JSON object */
	char *parameters;    /* JSON object */
	char *parameter_schema_file;
	char *tags; /* comma list */
	bool paused;
	long concurrency_limit; /* 0: none */
	char *collision_strategy;
	char *cron, *interval, *rrule, *timezone, *anchor_date;
	bool day_or, active;
	char *catchup;
	double catchup_window;
	char *overlap;
	const char *file; /* config file and line of the section header */
	int line;
};

/* A [schedule "NAME"] section: one more schedule of a deployment. */
struct pp_sched_conf {
	char name[PP_NAME_MAX];
	char *deployment;
	char *cron, *interval, *rrule, *timezone, *anchor_date;
	bool day_or, active;
	char *catchup;
	double catchup_window;
	char *overlap;
	char *parameters; /* JSON object */
	const char *file;
	int line;
};

struct pp_config {
	char *path;
	struct pp_dispatcher_conf dispatcher;
	struct pp_store_conf store;
	struct pp_prefect_conf prefect;
	struct pp_pool_conf *pools;
	size_t npools;
	struct pp_cred_conf *creds;
	size_t ncreds;
	char **dropins; /* the drop-in files read after path (FILE.d, files *.conf), in order */
	size_t ndropins;
	struct pp_deploy_conf *deployments;
	size_t ndeployments;
	struct pp_sched_conf *schedules;
	size_t nschedules;
};

/* Defaults only (no file). */
int pp_config_init(struct pp_config *c, struct pp_error *err);
/* Load a file on top of defaults, then env overrides. Collects every error:
 * on failure err->msg holds all of them, one "FILE:LINE: message" per line. */
int pp_config_load(struct pp_config *c, const char *path, struct pp_error *err);
/* pp_config_load, with every problem appended to problems (one "FILE:LINE:
 * message" per line) rather than cut to fit err->msg; for `check`. */
int pp_config_load_report(struct pp_config *c, const char *path, struct pp_buf *problems,
			  struct pp_error *err);
/* Cross-checks: pool types known, template files parse, credentials exist
 * and their files are readable. Appends "FILE:LINE: ..." lines to out. */
int pp_config_validate(const struct pp_config *c, struct pp_buf *out);
void pp_config_free(struct pp_config *c);
/* The drop-in directory of the loaded file: "FILE.d". PP_ENOTFOUND when no
 * file was loaded. */
int pp_config_dropin_dir(const struct pp_config *c, char *out, size_t size);

const struct pp_pool_conf *pp_config_pool(const struct pp_config *c, const char *name);
const struct pp_cred_conf *pp_config_cred(const struct pp_config *c, const char *name);

/* Every key with type, default and description (the documentation table). */
int pp_config_print_defaults(struct pp_buf *out, bool markdown);
/* The effective configuration (file, defaults and environment) as INI, with
 * secrets shown as [REDACTED]; for `check --print`. */
int pp_config_print(const struct pp_config *c, struct pp_buf *out);

#endif
