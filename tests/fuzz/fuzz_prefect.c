/* libFuzzer entry for the Prefect source's response handling, driven through
 * its public ops (open, poll, job_inputs, resolve_job, report, close) as the dispatch loop
 * drives them. The source's blocking HTTP calls take canned answers from
 * the input (canned_http.h), so no server and no seam in the product code
 * are needed.
 *
 * Beyond "no crash, no leak": every failure carries a message, the API key
 * never appears in one, every request goes to the configured server, and
 * every run the source inserts names a served pool and a flow-run id.
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatcher/config.h"
#include "lib/http.h"
#include "lib/log.h"
#include "sources/prefect_states.h"
#include "sources/source.h"
#include "store/store.h"
#include "tests/fuzz/canned_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define API_URL		  "http://prefect.invalid/api"
#define API_KEY		  "pnu_fuzzcanary0123456789abcdefghijklmn"
#define MAX_REPORTED_RUNS 4

static struct pp_config cfg;

static const char *const server[] = {API_URL "/", NULL};
static const char *const secrets[] = {API_KEY, NULL};

/* The harness's own setup failing is a bug in the harness: stop loudly. */
static void setup_failed(const char *what, const char *msg)
{
	fprintf(stderr, "fuzz_prefect setup: %s: %s\n", what, msg);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pp_error err = {0};
	char dir[] = "/tmp/pp-fuzz-prefect-XXXXXX", conf[96];
	if (!mkdtemp(dir))
		setup_failed("mkdtemp", "failed");
	snprintf(conf, sizeof(conf), "%s/pushpool.conf", dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		setup_failed(conf, "cannot write");
	fprintf(f,
		"[dispatcher]\nstate_dir = %s\n\n[pool \"ecs\"]\ntype = ecs:push\n\n"
		"[pool \"modal\"]\ntype = modal:push\n\n"
		"[source \"prefect\"]\napi_url = " API_URL "/\napi_key = " API_KEY "\n"
		"claim_timeout = 1\n",
		dir);
	fclose(f);
	if (pp_config_init(&cfg, &err) || pp_config_load(&cfg, conf, &err))
		setup_failed(conf, err.msg);
	/* Loaded: the source needs neither the file nor the directory. */
	unlink(conf);
	rmdir(dir);
	FILE *devnull = fopen("/dev/null", "w");
	if (!devnull)
		abort();
	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, devnull);
	return 0;
}

static const enum pp_store_state report_states[] = {
	PP_ST_SUBMITTED, PP_ST_RUNNING, PP_ST_SUCCEEDED, PP_ST_FAILED, PP_ST_CANCELLED,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_error err = {0};
	struct pp_store *store = NULL;
	struct pp_source *src = NULL;
	canned_start(data, size, server);

	/* A fresh in-memory store per input: no state carries over. */
	if (pp_store_open(":memory:", &store, &err))
		setup_failed("store", err.msg);
	if (pp_source_prefect.open(&cfg, &src, &err))
		setup_failed("open", err.msg);

	canned_check_failure(src->ops->poll(src, store, &err), &err, secrets);

	struct pp_run_rec *runs = NULL;
	int nruns = 0;
	struct pp_run_filter all = {.pool = NULL, .state = -1, .limit = 0};
	if (store->ops->list(store, &all, &runs, &nruns, &err))
		setup_failed("list", err.msg);
	for (int i = 0; i < nruns; i++) {
		const struct pp_run_rec *r = &runs[i];
		if ((strcmp(r->pool, "ecs") && strcmp(r->pool, "modal")) || !r->source ||
		    strcmp(r->source, "prefect") || !r->source_ref || strcmp(r->source_ref, r->id))
			abort(); /* a run recorded with the wrong pool or origin */
		if (i >= MAX_REPORTED_RUNS)
			continue;
		const struct pp_json *tmpl = NULL;
		struct pp_json *vars = NULL;
		uint64_t version = 0;
		pp_error_clear(&err);
		int rc = src->ops->job_inputs(src, r, &tmpl, &version, &vars, &err);
		canned_check_failure(rc, &err, secrets);
		if (!rc && (!tmpl || !version))
			abort(); /* the Prefect source always owns the template */
		/* What resolve_job does to a rendered job: a copy of the
		 * template's job_configuration (the template is the source's,
		 * lent unchanged) stands in for one. */
		if (!rc) {
			struct pp_json *job = pp_json_clone(pp_json_get(tmpl, "job_configuration"));
			pp_error_clear(&err);
			if (job)
				canned_check_failure(src->ops->resolve_job(src, r, job, &err), &err,
						     secrets);
			pp_json_free(job);
		}
		pp_json_free(vars);
		enum pp_store_state st =
			report_states[i % (sizeof(report_states) / sizeof(report_states[0]))];
		pp_error_clear(&err);
		rc = src->ops->report(src, r, st, i % 2 ? "arn:aws:ecs:task/1" : NULL, "fuzz",
				      &err);
		canned_check_failure(rc, &err, secrets);
	}
	pp_run_recs_free(runs, nruns);

	/* A second poll delivers the queued reports and reconciles again. */
	pp_error_clear(&err);
	canned_check_failure(src->ops->poll(src, store, &err), &err, secrets);
	src->ops->close(src);
	pp_store_close(store);
	return 0;
}
