/* The status page's API (dispatcher/ui.c) on a real listener over a SQLite
 * store: pools with runs by state, recent runs newest first and filtered,
 * one run with its events, bad parameters refused, secrets redacted, the
 * page served with a CSP naming its script, and the token (Bearer or Basic)
 * required when one is configured, compared against the right token only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dispatcher/config.h"
#include "dispatcher/metrics.h"
#include "dispatcher/ui.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "store/store.h"
#include "tests/unit/http_get.h"

static char dir[64];
static char db[128];
static const char *const SECRET = "s3cr3t-in-an-error-message";

struct page {
	long status;
	struct pp_buf body;
	char csp[512];
	char www_auth[128];
};

static void fetch(int port, const char *path, const char *auth, struct page *out)
{
	struct pp_http_resp resp;
	hg_get(port, path, auth, 8 << 20, &resp);
	memset(out, 0, sizeof(*out));
	out->status = resp.status;
	pp_buf_init(&out->body, 8 << 20);
	assert_int_equal(
		pp_buf_append(&out->body, resp.body.data ? resp.body.data : "", resp.body.len), 0);
	for (struct pp_http_header *h = resp.headers; h; h = h->next) {
		if (!strcmp(h->name, "content-security-policy"))
			snprintf(out->csp, sizeof(out->csp), "%s", h->value);
		if (!strcmp(h->name, "www-authenticate"))
			snprintf(out->www_auth, sizeof(out->www_auth), "%s", h->value);
	}
	pp_http_resp_free(&resp);
}

static struct pp_json *fetch_json(int port, const char *path, long want)
{
	struct page p;
	fetch(port, path, NULL, &p);
	if (p.status != want)
		fail_msg("GET %s: %ld (wanted %ld): %s", path, p.status, want, pp_buf_str(&p.body));
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	if (pp_json_parse(p.body.data, p.body.len, NULL, &j, &err))
		fail_msg("GET %s: not JSON (%s): %s", path, err.msg, pp_buf_str(&p.body));
	pp_buf_free(&p.body);
	return j;
}

static void add_run(struct pp_store *s, const char *pool, const char *name, int64_t at,
		    enum pp_store_state final, const char *error, char id[PP_ID_LEN])
{
	struct pp_error err = {0};
	struct pp_run_rec r = {.scheduled_ms = at, .state = PP_ST_SCHEDULED};
	snprintf(r.pool, sizeof(r.pool), "%s", pool);
	r.name = (char *)name;
	assert_int_equal(s->ops->insert(s, &r, &err), 0);
	snprintf(id, PP_ID_LEN, "%s", r.id);
	if (final == PP_ST_SCHEDULED)
		return;
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, pool, "ui-test", 60000, 1, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	struct pp_run_update u = {.state = final,
				  .attempt = 1,
				  .next_attempt_ms = -1,
				  .infra_id = "job-1",
				  .error = error,
				  .release_lease = true,
				  .event = error ? error : "done"};
	assert_int_equal(s->ops->update(s, runs[0].id, runs[0].fence, &u, &err), 0);
	pp_run_recs_free(runs, n);
}

struct fixture {
	struct pp_config cfg;
	struct pp_metrics *m;
	struct pp_ui *ui;
	int port;
	char ok[PP_ID_LEN], bad[PP_ID_LEN], hostile[PP_ID_LEN], waiting[PP_ID_LEN];
};

static void start(struct fixture *f, const char *token)
{
	struct pp_error err = {0};
	memset(f, 0, sizeof(*f));
	assert_int_equal(pp_config_init(&f->cfg, &err), 0);
	char conf[160];
	snprintf(conf, sizeof(conf), "%s/pushpool.conf", dir);
	FILE *c = fopen(conf, "w");
	assert_non_null(c);
	fprintf(c, "[dispatcher]\nstate_dir = %s\nmetrics_listen = 127.0.0.1:0\n", dir);
	if (token) {
		char tf[160];
		snprintf(tf, sizeof(tf), "%s/ui-token", dir);
		FILE *t = fopen(tf, "w");
		assert_non_null(t);
		fprintf(t, "%s\n", token);
		fclose(t);
		chmod(tf, 0600);
		fprintf(c, "ui_token_file = %s\n", tf);
	}
	fprintf(c, "[pool \"ecs\"]\ntype = ecs\nmax_in_flight = 7\n[pool \"modal\"]\ntype = "
		   "modal:push\n");
	fclose(c);
	if (pp_config_load(&f->cfg, conf, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(pp_metrics_start("127.0.0.1:0", &f->m, &err), 0);
	f->port = pp_metrics_port(f->m);
	if (pp_ui_new(&f->cfg, db, f->m, &f->ui, &err))
		fail_msg("%s", err.msg);
	assert_non_null(f->ui);
	pp_metrics_set_page(f->m, pp_ui_answer, f->ui);
}

static void stop(struct fixture *f)
{
	pp_metrics_stop(f->m);
	pp_ui_free(f->ui);
	pp_config_free(&f->cfg);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/pp-ui-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(db, sizeof(db), "%s/runs.db", dir);
	static struct fixture f;
	struct pp_store *s;
	struct pp_error err = {0};
	if (pp_store_open(db, &s, &err))
		return -1;
	pp_secret_register(SECRET);
	int64_t now = pp_wall_ms();
	add_run(s, "ecs", "nightly", now - 3000, PP_ST_SUCCEEDED, NULL, f.ok);
	char why[128];
	snprintf(why, sizeof(why), "exit code 1: token %s rejected", SECRET);
	add_run(s, "ecs", "broken", now - 2000, PP_ST_FAILED, why, f.bad);
	add_run(s, "modal", "<script>alert(1)</script>", now - 1000, PP_ST_SUCCEEDED, NULL,
		f.hostile);
	add_run(s, "gone", "orphan", now + 60000, PP_ST_SCHEDULED, NULL, f.waiting);
	pp_store_close(s);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static long count(const struct pp_json *pools, const char *pool, const char *st)
{
	for (size_t i = 0;; i++) {
		const struct pp_json *p = pp_json_at(pools, i);
		if (!p)
			fail_msg("pool %s not listed", pool);
		if (!strcmp(pp_json_get(p, "name")->str, pool))
			return (long)pp_json_get(pp_json_get(p, "runs"), st)->num;
	}
}

static void test_api(void **state)
{
	struct fixture *ids = *state, f;
	start(&f, NULL);
	struct pp_json *j = fetch_json(f.port, "/api/pools", 200);
	const struct pp_json *pools = pp_json_get(j, "pools");
	assert_int_equal(count(pools, "ecs", "SUCCEEDED"), 1);
	assert_int_equal(count(pools, "ecs", "FAILED"), 1);
	assert_int_equal(count(pools, "modal", "SUCCEEDED"), 1);
	/* A pool only the store knows is listed, marked as not configured. */
	assert_int_equal(count(pools, "gone", "SCHEDULED"), 1);
	assert_false(pp_json_path(j, "pools[2].configured")->b);
	assert_int_equal((long)pp_json_path(j, "pools[0].max_in_flight")->num, 7);
	assert_string_equal(pp_json_path(j, "pools[0].type")->str, "ecs:push");
	pp_json_free(j);

	/* Newest first; filters by state and pool. */
	j = fetch_json(f.port, "/api/runs", 200);
	assert_string_equal(pp_json_path(j, "runs[0].id")->str, ids->waiting);
	assert_string_equal(pp_json_path(j, "runs[3].id")->str, ids->ok);
	/* Hostile text is data: the JSON carries it as it is, for the page to
	 * show as text. */
	assert_string_equal(pp_json_path(j, "runs[1].name")->str, "<script>alert(1)</script>");
	pp_json_free(j);
	j = fetch_json(f.port, "/api/runs?state=FAILED&pool=ecs", 200);
	assert_non_null(pp_json_path(j, "runs[0]"));
	assert_null(pp_json_path(j, "runs[1]"));
	assert_string_equal(pp_json_path(j, "runs[0].id")->str, ids->bad);
	/* The secret in the stored error never leaves. */
	const char *e = pp_json_path(j, "runs[0].error")->str;
	assert_null(strstr(e, SECRET));
	assert_non_null(strstr(e, "[REDACTED]"));
	pp_json_free(j);
	j = fetch_json(f.port, "/api/runs?limit=1", 200);
	assert_null(pp_json_path(j, "runs[1]"));
	pp_json_free(j);

	/* One run, by id or unique prefix, with its events. */
	char path[128];
	snprintf(path, sizeof(path), "/api/runs/%.23s", ids->bad);
	j = fetch_json(f.port, path, 200);
	assert_string_equal(pp_json_path(j, "run.id")->str, ids->bad);
	assert_string_equal(pp_json_path(j, "run.state")->str, "FAILED");
	assert_string_equal(pp_json_path(j, "run.infra_id")->str, "job-1");
	const struct pp_json *ev = pp_json_get(j, "events");
	assert_non_null(pp_json_at(ev, 0));
	bool failed_event = false;
	for (size_t i = 0; pp_json_at(ev, i); i++) {
		const char *msg = pp_json_get(pp_json_at(ev, i), "message")->str;
		assert_null(strstr(msg, SECRET));
		failed_event |= !strcmp(pp_json_get(pp_json_at(ev, i), "state")->str, "FAILED");
	}
	assert_true(failed_event);
	pp_json_free(j);

	/* Bad parameters and unknown paths: clear errors. */
	pp_json_free(fetch_json(f.port, "/api/runs?state=BOGUS", 400));
	pp_json_free(fetch_json(f.port, "/api/runs?limit=0", 400));
	pp_json_free(fetch_json(f.port, "/api/runs?limit=5x", 400));
	pp_json_free(fetch_json(f.port, "/api/runs/'%3Bdrop", 400));
	pp_json_free(fetch_json(f.port, "/api/runs/00000000-0000-4000-8000-000000000000", 404));
	pp_json_free(fetch_json(f.port, "/api/nothing", 404));
	j = fetch_json(f.port, "/api/activity", 200);
	assert_non_null(pp_json_path(j, "minutes[0].t"));
	pp_json_free(j);

	/* The page: HTML with a CSP that names its inline script by hash. */
	struct page p;
	fetch(f.port, "/", NULL, &p);
	assert_int_equal(p.status, 200);
	assert_non_null(strstr(pp_buf_str(&p.body), "<title>pushpool</title>"));
	assert_non_null(strstr(p.csp, "script-src 'sha256-"));
	assert_non_null(strstr(p.csp, "default-src 'none'"));
	pp_buf_free(&p.body);
	/* /metrics and /healthz are still the metrics listener's own. */
	fetch(f.port, "/healthz", NULL, &p);
	assert_int_equal(p.status, 200);
	pp_buf_free(&p.body);
	stop(&f);
}

static void test_token(void **state)
{
	struct fixture f;
	start(&f, "correct-horse-battery");
	struct page p;
	fetch(f.port, "/api/pools", NULL, &p);
	assert_int_equal(p.status, 401);
	assert_non_null(strstr(p.www_auth, "Basic realm=\"pushpool\""));
	pp_buf_free(&p.body);
	fetch(f.port, "/", NULL, &p);
	assert_int_equal(p.status, 401);
	assert_null(strstr(pp_buf_str(&p.body), "<html"));
	pp_buf_free(&p.body);
	fetch(f.port, "/api/pools", "Bearer correct-horse-battery", &p);
	assert_int_equal(p.status, 200);
	pp_buf_free(&p.body);
	/* A browser's Basic prompt: any user, the token as password
	 * ("u:correct-horse-battery"). */
	fetch(f.port, "/", "Basic dTpjb3JyZWN0LWhvcnNlLWJhdHRlcnk=", &p);
	assert_int_equal(p.status, 200);
	pp_buf_free(&p.body);
	static const char *const wrong[] = {
		"Bearer correct-horse-batter",		  /* a prefix */
		"Bearer correct-horse-battery2",	  /* longer */
		"Bearer ",				  /* empty */
		"Basic dTpjb3JyZWN0LWhvcnNlLWJhdHRlcg==", /* u:correct-horse-batter */
		"Basic !!!!",				  /* not base64 */
		"Basic Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5",	  /* no colon */
		"Digest correct-horse-battery",
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		fetch(f.port, "/api/runs", wrong[i], &p);
		if (p.status != 401)
			fail_msg("%s: %ld", wrong[i], p.status);
		pp_buf_free(&p.body);
	}
	/* Prometheus still scrapes without the token. */
	fetch(f.port, "/metrics", NULL, &p);
	assert_int_equal(p.status, 200);
	pp_buf_free(&p.body);
	stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api),
		cmocka_unit_test(test_token),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
