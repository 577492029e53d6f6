/* The status page and its JSON API (docs/ui.md). Everything here is read
 * only: the handle it opens on the store is used for counts, lists and one
 * run's history. The page itself is static (build/gen/ui_page.c, from
 * dispatcher/ui_page.html) and fills itself from /api/ with DOM text nodes,
 * so no text from the store is ever parsed as HTML. */
#include "dispatcher/ui.h"

#include <stdarg.h>
#include <strings.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/op_driver.h"
#include "dispatcher/pool.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/time.h"
#include "store/deploy.h"
#include "store/store.h"

/* The page, embedded at build time. */
extern const char pp_ui_page[];
extern const size_t pp_ui_page_len;

enum {
	UI_LIST_DEFAULT = 100,
	UI_LIST_MAX = 1000,
	UI_POOLS_MAX = 256,
	UI_CSP_MAX = 512,
	/* A run's log on its page: the newest lines, read in at most this
	 * many pages (a request must not hold the listener for long). */
	UI_LOG_LINES = 500,
	UI_LOG_PAGES = 20,
};

struct ui_pool {
	char name[PP_NAME_MAX];
	char type[64];
	long max_in_flight, max_submitting;
};

struct pp_ui {
	pthread_mutex_t mu;
	char *store_url;
	char *config_path;	/* read again for a run's log: its pool's credentials */
	struct pp_store *store; /* opened on first use; used only under mu */
	struct pp_metrics *metrics;
	/* SHA-256 of the bearer token: compared in constant time, and the
	 * token itself is not kept. */
	unsigned char token_hash[SHA256_DIGEST_LENGTH];
	bool need_token;
	struct ui_pool pools[UI_POOLS_MAX];
	size_t npools;
	char csp[UI_CSP_MAX]; /* the header, made for the first page served ("" before) */
};

/* The CSP names the page's inline script and style by their hashes, so a
 * script that reached the page any other way would not run. */
static int hash_between(const char *open, const char *close, char *out, size_t n)
{
	const char *a = strstr(pp_ui_page, open);
	const char *b = a ? strstr(a, close) : NULL;
	if (!a || !b)
		return -1;
	a = strchr(a, '>') + 1;
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)a, (size_t)(b - a), md);
	unsigned char b64[64];
	EVP_EncodeBlock(b64, md, sizeof(md));
	snprintf(out, n, "'sha256-%s'", b64);
	return 0;
}

static int build_csp(struct pp_ui *ui, struct pp_error *err)
{
	char script[80], style[80];
	if (hash_between("<script>", "</script>", script, sizeof(script)) ||
	    hash_between("<style>", "</style>", style, sizeof(style)))
		return pp_fail(err, PP_EINVALID, "status page: embedded page has no script/style");
	snprintf(ui->csp, sizeof(ui->csp),
		 "Content-Security-Policy: default-src 'none'; script-src %s; style-src %s; "
		 "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
		 "frame-ancestors 'none'",
		 script, style);
	return 0;
}

int pp_ui_set_pools(struct pp_ui *ui, const struct pp_config *cfg, struct pp_error *err)
{
	pthread_mutex_lock(&ui->mu);
	ui->npools = 0;
	for (size_t i = 0; i < cfg->npools && ui->npools < UI_POOLS_MAX; i++) {
		struct ui_pool *p = &ui->pools[ui->npools++];
		snprintf(p->name, sizeof(p->name), "%s", cfg->pools[i].name);
		snprintf(p->type, sizeof(p->type), "%s",
			 cfg->pools[i].type ? cfg->pools[i].type : "");
		p->max_in_flight = cfg->pools[i].max_in_flight;
		p->max_submitting = cfg->pools[i].max_submitting;
	}
	pthread_mutex_unlock(&ui->mu);
	return 0;
}

int pp_ui_new(const struct pp_config *cfg, const char *store_url, struct pp_metrics *m,
	      struct pp_ui **out, struct pp_error *err)
{
	*out = NULL;
	if (!cfg->dispatcher.ui || !m)
		return 0;
	struct pp_ui *ui = calloc(1, sizeof(*ui));
	if (!ui || !(ui->store_url = strdup(store_url)) ||
	    (cfg->path && !(ui->config_path = strdup(cfg->path)))) {
		if (ui)
			free(ui->store_url);
		free(ui);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&ui->mu, NULL);
	ui->metrics = m;
	int rc = 0;
	const char *tf = cfg->dispatcher.ui_token_file;
	if (tf && *tf) {
		char *token = NULL;
		rc = pp_file_read_secret(tf, "ui_token_file", PP_EINVALID, &token, err);
		if (!rc && strlen(token) > PP_UI_TOKEN_MAX)
			rc = pp_fail(err, PP_EINVALID,
				     "ui_token_file %s: token longer than %d bytes", tf,
				     PP_UI_TOKEN_MAX);
		if (!rc) {
			SHA256((const unsigned char *)token, strlen(token), ui->token_hash);
			ui->need_token = true;
		}
		if (token) {
			OPENSSL_cleanse(token, strlen(token));
			free(token);
		}
	}
	if (!rc)
		rc = pp_ui_set_pools(ui, cfg, err);
	if (rc) {
		pp_ui_free(ui);
		return rc;
	}
	*out = ui;
	return 0;
}

void pp_ui_free(struct pp_ui *ui)
{
	if (!ui)
		return;
	if (ui->store)
		pp_store_close(ui->store);
	pthread_mutex_destroy(&ui->mu);
	free(ui->store_url);
	free(ui->config_path);
	free(ui);
}

/* The token from "Bearer T", or the password of "Basic base64(user:T)" (what
 * a browser sends after its own prompt), compared by hash in constant time. */
static bool authorized(const struct pp_ui *ui, const char *auth)
{
	if (!ui->need_token)
		return true;
	if (!auth)
		return false;
	char decoded[PP_UI_TOKEN_MAX * 2];
	const char *token = NULL;
	size_t len = 0;
	if (!strncasecmp(auth, "Bearer ", 7)) {
		token = auth + 7;
		len = strlen(token);
	} else if (!strncasecmp(auth, "Basic ", 6)) {
		const char *b64 = auth + 6;
		size_t n = strlen(b64);
		if (n == 0 || n % 4 || n / 4 * 3 >= sizeof(decoded))
			return false;
		int got = EVP_DecodeBlock((unsigned char *)decoded, (const unsigned char *)b64,
					  (int)n);
		if (got < 0)
			return false;
		/* EVP_DecodeBlock counts the padding as bytes. */
		while (got > 0 && n && b64[--n] == '=')
			got--;
		decoded[got] = '\0';
		const char *colon = memchr(decoded, ':', (size_t)got);
		if (!colon)
			return false;
		token = colon + 1;
		len = (size_t)got - (size_t)(token - decoded);
	}
	if (!token || len > PP_UI_TOKEN_MAX)
		return false;
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)token, len, md);
	OPENSSL_cleanse(decoded, sizeof(decoded));
	return CRYPTO_memcmp(md, ui->token_hash, sizeof(md)) == 0;
}

/* A string member, redacted (a secret that reached the store as text, e.g.
 * in an error, never leaves through the page). */
static int put_str(struct pp_buf *b, const char *key, const char *v, bool comma)
{
	int rc = (comma ? pp_buf_putc(b, ',') : 0) ?: pp_json_write_string(b, key, strlen(key)) ?:
		 pp_buf_putc(b, ':');
	if (rc)
		return rc;
	if (!v)
		return pp_buf_puts(b, "null");
	char *copy = strdup(v);
	if (!copy)
		return PP_ENOMEM;
	pp_redact(copy);
	rc = pp_json_write_string(b, copy, strlen(copy));
	free(copy);
	return rc;
}

static int put_time(struct pp_buf *b, const char *key, int64_t ms)
{
	if (ms <= 0)
		return pp_buf_printf(b, ",\"%s\":null", key);
	char t[PP_TIME_LEN];
	pp_time_format(ms, true, t);
	return pp_buf_printf(b, ",\"%s\":\"%s\"", key, t);
}

static int put_run(struct pp_buf *b, const struct pp_run_rec *r)
{
	return pp_buf_putc(b, '{') ?: put_str(b, "id", r->id, false) ?:
	       put_str(b, "name", r->name, true) ?: put_str(b, "pool", r->pool, true) ?:
	       put_str(b, "deployment", r->deployment, true) ?:
	       put_str(b, "state", pp_store_state_name(r->state), true) ?:
	       put_str(b, "source", r->source, true) ?:
	       put_str(b, "source_ref", r->source_ref, true) ?:
	       put_str(b, "infra_id", r->infra_id, true) ?:
	       put_str(b, "error", r->last_error, true) ?:
	       pp_buf_printf(b, ",\"attempt\":%d,\"priority\":%d,\"cancel_requested\":%s",
			     r->attempt, r->priority, r->cancel_requested ? "true" : "false") ?:
	       put_time(b, "scheduled", r->scheduled_ms) ?: put_time(b, "created", r->created_ms) ?:
	       put_time(b, "updated", r->updated_ms) ?:
	       put_time(b, "next_attempt", r->next_attempt_ms) ?: pp_buf_putc(b, '}');
}

static void answer_error(struct pp_metrics_resp *resp, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void answer_error(struct pp_metrics_resp *resp, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pp_redact(msg);
	pp_buf_reset(&resp->body);
	resp->status = status;
	resp->content_type = "application/json";
	if (pp_buf_puts(&resp->body, "{\"error\":") ||
	    pp_json_write_string(&resp->body, msg, strlen(msg)) || pp_buf_puts(&resp->body, "}\n"))
		pp_buf_reset(&resp->body);
}

static struct pp_store *store(struct pp_ui *ui, struct pp_error *err)
{
	if (!ui->store && pp_store_open(ui->store_url, &ui->store, err))
		ui->store = NULL;
	return ui->store;
}

static void api_pools(struct pp_ui *ui, struct pp_metrics_resp *resp)
{
	struct pp_error err = {0};
	struct pp_store *s = store(ui, &err);
	struct pp_store_counts *c = calloc(1, sizeof(*c));
	if (!c) {
		answer_error(resp, 500, "out of memory");
		return;
	}
	if (!s || s->ops->counts(s, c, &err)) {
		answer_error(resp, 503, "store: %s", err.msg);
		free(c);
		return;
	}
	struct pp_buf *b = &resp->body;
	int rc = pp_buf_puts(b, "{\"pools\":[");
	bool first = true;
	/* Configured pools first, then pools that only the store knows (runs
	 * left from a pool since removed from the configuration). */
	for (size_t i = 0; i < ui->npools && !rc; i++) {
		const struct ui_pool *p = &ui->pools[i];
		const long *by = NULL;
		for (int j = 0; j < c->npools; j++)
			if (!strcmp(c->pools[j].pool, p->name))
				by = c->pools[j].by_state;
		rc = (first ? 0 : pp_buf_putc(b, ',')) ?: pp_buf_putc(b, '{') ?:
		     put_str(b, "name", p->name, false) ?: put_str(b, "type", p->type, true) ?:
		     pp_buf_printf(b,
				   ",\"configured\":true,\"max_in_flight\":%ld,"
				   "\"max_submitting\":%ld,\"runs\":{",
				   p->max_in_flight, p->max_submitting);
		for (int st = 0; st < PP_ST_COUNT && !rc; st++)
			rc = pp_buf_printf(b, "%s\"%s\":%ld", st ? "," : "",
					   pp_store_state_name((enum pp_store_state)st),
					   by ? by[st] : 0);
		rc = rc ?: pp_buf_puts(b, "}}");
		first = false;
	}
	for (int j = 0; j < c->npools && !rc; j++) {
		bool configured = false;
		for (size_t i = 0; i < ui->npools; i++)
			configured |= !strcmp(c->pools[j].pool, ui->pools[i].name);
		if (configured)
			continue;
		rc = (first ? 0 : pp_buf_putc(b, ',')) ?: pp_buf_putc(b, '{') ?:
		     put_str(b, "name", c->pools[j].pool, false) ?:
		     pp_buf_puts(b, ",\"type\":null,\"configured\":false,\"runs\":{");
		for (int st = 0; st < PP_ST_COUNT && !rc; st++)
			rc = pp_buf_printf(b, "%s\"%s\":%ld", st ? "," : "",
					   pp_store_state_name((enum pp_store_state)st),
					   c->pools[j].by_state[st]);
		rc = rc ?: pp_buf_puts(b, "}}");
		first = false;
	}
	/* The store-wide settings: pause, limit, work queues. */
	struct pp_pool_rec *prs = NULL;
	struct pp_queue_rec *qs = NULL;
	int npr = 0, nq = 0;
	if (!rc &&
	    (pp_pool_list(s, false, &prs, &npr, &err) || pp_queue_list(s, NULL, &qs, &nq, &err))) {
		pp_pool_recs_free(prs, npr);
		free(c);
		answer_error(resp, 503, "store: %s", err.msg);
		return;
	}
	rc = rc ?: pp_buf_puts(b, "],\"settings\":[");
	for (int i = 0; i < npr && !rc; i++) {
		rc = (i ? pp_buf_putc(b, ',') : 0) ?: pp_buf_putc(b, '{') ?:
		     put_str(b, "pool", prs[i].name, false) ?:
		     pp_buf_printf(b, ",\"paused\":%s,\"limit\":%d,\"queues\":[",
				   prs[i].paused ? "true" : "false", prs[i].concurrency_limit);
		bool first_q = true;
		for (int k = 0; k < nq && !rc; k++) {
			if (strcmp(qs[k].pool, prs[i].name))
				continue;
			rc = (first_q ? 0 : pp_buf_putc(b, ',')) ?: pp_buf_putc(b, '{') ?:
			     put_str(b, "name", qs[k].name, false) ?:
			     pp_buf_printf(b,
					   ",\"priority\":%d,\"limit\":%d,\"paused\":%s,"
					   "\"active\":%ld,\"waiting\":%ld}",
					   qs[k].priority, qs[k].concurrency_limit,
					   qs[k].paused ? "true" : "false", qs[k].active, qs[k].waiting);
			first_q = false;
		}
		rc = rc ?: pp_buf_puts(b, "]}");
	}
	pp_pool_recs_free(prs, npr);
	pp_queue_recs_free(qs, nq);
	rc = rc ?: pp_buf_puts(b, "],\"runs\":{");
	for (int st = 0; st < PP_ST_COUNT && !rc; st++)
		rc = pp_buf_printf(b, "%s\"%s\":%ld", st ? "," : "",
				   pp_store_state_name((enum pp_store_state)st), c->by_state[st]);
	double lag = c->oldest_due_ms ? (double)(pp_wall_ms() - c->oldest_due_ms) / 1000.0 : 0;
	rc = rc
		     ?: pp_buf_printf(b, "},\"queue_lag_seconds\":%.3f,\"more_pools\":%s}\n", lag,
				      c->more_pools ? "true" : "false");
	free(c);
	if (rc)
		answer_error(resp, 500, "pools: %s", pp_strerror(rc));
}

static void api_runs(struct pp_ui *ui, const struct pp_metrics_req *req,
		     struct pp_metrics_resp *resp)
{
	struct pp_run_filter f = {.state = -1, .limit = UI_LIST_DEFAULT, .newest_first = true};
	const char *state = pp_metrics_req_arg(req, "state");
	const char *pool = pp_metrics_req_arg(req, "pool");
	const char *limit = pp_metrics_req_arg(req, "limit");
	if (state && *state) {
		enum pp_store_state st;
		if (pp_store_state_parse(state, &st)) {
			answer_error(resp, 400,
				     "state: unknown state (expected one of SCHEDULED, "
				     "RUNNING, SUCCEEDED, FAILED, ...)");
			return;
		}
		f.state = (int)st;
	}
	if (pool && *pool)
		f.pool = pool;
	if (limit && *limit) {
		char *end;
		long n = strtol(limit, &end, 10);
		if (*end || n < 1 || n > UI_LIST_MAX) {
			answer_error(resp, 400, "limit: expected 1 to %d", UI_LIST_MAX);
			return;
		}
		f.limit = (int)n;
	}
	struct pp_error err = {0};
	struct pp_store *s = store(ui, &err);
	struct pp_run_rec *runs = NULL;
	int n = 0;
	if (!s || s->ops->list(s, &f, &runs, &n, &err)) {
		answer_error(resp, 503, "store: %s", err.msg);
		return;
	}
	struct pp_buf *b = &resp->body;
	int rc = pp_buf_puts(b, "{\"runs\":[");
	for (int i = 0; i < n && !rc; i++)
		rc = (i ? pp_buf_putc(b, ',') : 0) ?: put_run(b, &runs[i]);
	rc = rc ?: pp_buf_puts(b, "]}\n");
	pp_run_recs_free(runs, n);
	if (rc)
		answer_error(resp, 500, "runs: %s", pp_strerror(rc));
}

static void api_run(struct pp_ui *ui, const char *id, struct pp_metrics_resp *resp)
{
	size_t len = strlen(id);
	if (!len || len >= PP_ID_LEN || strspn(id, "0123456789abcdef-") != len) {
		answer_error(resp, 400, "run id: expected a run id or a unique prefix of one");
		return;
	}
	struct pp_error err = {0};
	struct pp_store *s = store(ui, &err);
	struct pp_run_rec rec = {0};
	struct pp_run_event *ev = NULL;
	int nev = 0;
	if (!s) {
		answer_error(resp, 503, "store: %s", err.msg);
		return;
	}
	int grc = s->ops->get(s, id, &rec, &ev, &nev, &err);
	if (grc == PP_ENOTFOUND) {
		answer_error(resp, 404, "%s", err.msg);
		return;
	}
	if (grc) {
		answer_error(resp, grc == PP_EINVALID ? 400 : 503, "%s", err.msg);
		return;
	}
	/* job_variables and parameters are JSON text a user typed: sent as
	 * strings, redacted like the rest. */
	struct pp_buf *b = &resp->body;
	int rc = pp_buf_puts(b, "{\"run\":") ?: put_run(b, &rec) ?:
	     put_str(b, "job_variables", rec.job_variables, true) ?:
	     put_str(b, "parameters", rec.parameters, true) ?: pp_buf_puts(b, ",\"events\":[");
	for (int i = 0; i < nev && !rc; i++) {
		rc = (i ? pp_buf_putc(b, ',') : 0) ?: pp_buf_putc(b, '{') ?:
		     put_str(b, "state", ev[i].state, false) ?:
		     put_str(b, "message", ev[i].message, true) ?: put_time(b, "at", ev[i].ts_ms) ?:
		     pp_buf_putc(b, '}');
	}
	rc = rc ?: pp_buf_puts(b, "]}\n");
	pp_run_rec_free(&rec);
	pp_run_events_free(ev, nev);
	if (rc)
		answer_error(resp, 500, "run: %s", pp_strerror(rc));
}

/* The newest lines of a run's output, from its cloud (docs/logs.md): its
 * pool is opened from the configuration file as `runs logs` does, and the
 * pages are read until the end or the caps. Only the store read holds
 * ui->mu: the cloud's answer is waited for on this connection's own thread
 * (metrics.c), so a slow cloud holds no other request. */
static void api_run_logs(struct pp_ui *ui, const char *id, struct pp_metrics_resp *resp)
{
	struct pp_error err = {0};
	struct pp_run_rec rec = {0};
	pthread_mutex_lock(&ui->mu);
	struct pp_store *s = store(ui, &err);
	int rc = s ? s->ops->get(s, id, &rec, NULL, NULL, &err) : PP_EIO;
	pthread_mutex_unlock(&ui->mu);
	if (!s) {
		answer_error(resp, 503, "store: %s", err.msg);
		return;
	}
	if (rc) {
		answer_error(resp, rc == PP_ENOTFOUND ? 404 : 503, "%s", err.msg);
		return;
	}
	struct pp_buf *b = &resp->body;
	if (!rec.infra_id || !*rec.infra_id) {
		pp_buf_puts(b, "{\"lines\":[],\"note\":\"the run never started in its cloud\"}\n");
		pp_run_rec_free(&rec);
		return;
	}
	struct pp_config cfg;
	struct pp_pool *pool = NULL;
	struct pp_json *job = NULL;
	struct pp_run_io io = {0};
	struct pp_logs logs = {0};
	char **ring = calloc(UI_LOG_LINES, sizeof(*ring));
	size_t nring = 0, total = 0;
	rc = ring ? pp_config_init(&cfg, &err) : pp_fail(&err, PP_ENOMEM, "out of memory");
	bool cfg_open = !rc;
	if (!rc && !ui->config_path)
		rc = pp_fail(&err, PP_EINVALID, "serve runs without a configuration file");
	if (!rc)
		rc = pp_config_load(&cfg, ui->config_path, &err);
	if (!rc)
		rc = pp_run_logs_open(&cfg, &rec, &pool, &job, &io, &err);
	io.logs = &logs;
	for (int page = 0; !rc && page < UI_LOG_PAGES; page++) {
		rc = pp_exec_run_op(pool->prov, PP_OP_LOGS, &io, NULL, &err);
		for (size_t i = 0; !rc && i < logs.n; i++, total++) {
			char *line = strdup(logs.v[i].text ? logs.v[i].text : "");
			if (!line) {
				rc = pp_fail(&err, PP_ENOMEM, "out of memory");
				break;
			}
			pp_redact(line);
			free(ring[total % UI_LOG_LINES]);
			ring[total % UI_LOG_LINES] = line;
		}
		bool more = logs.more;
		pp_logs_clear(&logs);
		if (!more)
			break;
	}
	nring = total < UI_LOG_LINES ? total : UI_LOG_LINES;
	if (rc) {
		answer_error(resp, rc == PP_ENOTFOUND ? 404 : 502, "run %s: logs: %s", rec.id,
			     err.msg);
	} else {
		int wrc = pp_buf_puts(b, "{\"lines\":[");
		for (size_t i = 0; i < nring && !wrc; i++) {
			const char *l = ring[(total - nring + i) % UI_LOG_LINES];
			wrc = (i ? pp_buf_putc(b, ',') : 0)
				      ?: pp_json_write_string(b, l, strlen(l));
		}
		wrc = wrc ?: pp_buf_printf(b, "],\"total\":%zu}\n", total);
		if (wrc)
			answer_error(resp, 500, "logs: %s", pp_strerror(wrc));
	}
	for (size_t i = 0; ring && i < UI_LOG_LINES; i++)
		free(ring[i]);
	free(ring);
	pp_run_logs_close(pool, job, &io);
	if (cfg_open)
		pp_config_free(&cfg);
	pp_run_rec_free(&rec);
}

/* Deployments with their schedules and next runs (docs/deployments.md). */
static void api_deployments(struct pp_ui *ui, struct pp_metrics_resp *resp)
{
	struct pp_error err = {0};
	struct pp_store *s = store(ui, &err);
	struct pp_dep_rec *d = NULL;
	int n = 0;
	if (!s || pp_deploy_list(s, NULL, &d, &n, &err)) {
		answer_error(resp, 503, "store: %s", err.msg);
		return;
	}
	struct pp_buf *b = &resp->body;
	int rc = pp_buf_puts(b, "{\"deployments\":[");
	for (int i = 0; i < n && !rc; i++) {
		rc = (i ? pp_buf_putc(b, ',') : 0) ?: pp_buf_putc(b, '{') ?:
		     put_str(b, "name", d[i].name, false) ?: put_str(b, "pool", d[i].pool, true) ?:
		     put_str(b, "queue", d[i].queue, true) ?:
		     put_str(b, "description", d[i].description, true) ?:
		     put_str(b, "tags", d[i].tags, true) ?:
		     pp_buf_printf(b, ",\"paused\":%s,\"concurrency_limit\":%d,\"schedules\":[",
				   d[i].paused ? "true" : "false", d[i].concurrency_limit);
		for (int k = 0; k < d[i].nsched && !rc; k++) {
			const struct pp_dep_sched *c = &d[i].sched[k];
			char rule[64];
			if (c->cron)
				snprintf(rule, sizeof(rule), "cron");
			else if (c->rrule)
				snprintf(rule, sizeof(rule), "rrule");
			else
				snprintf(rule, sizeof(rule), "every %llds", (long long)c->interval);
			rc = (k ? pp_buf_putc(b, ',') : 0) ?: pp_buf_putc(b, '{') ?:
			     put_str(b, "kind", c->kind, false) ?:
			     put_str(b, "rule", c->cron ? c->cron : c->rrule ? c->rrule : rule, true) ?:
			     put_str(b, "timezone", c->timezone ? c->timezone : "UTC", true) ?:
			     put_str(b, "catchup", c->catchup, true) ?:
			     put_str(b, "overlap", c->overlap, true) ?:
			     pp_buf_printf(b, ",\"active\":%s}", c->active ? "true" : "false");
		}
		struct pp_run_rec *next = NULL;
		int nn = 0;
		if (!rc && pp_deploy_runs(s, d[i].name, PP_ST_SCHEDULED, 5, &next, &nn, &err))
			rc = err.code ? err.code : PP_EIO;
		rc = rc ?: pp_buf_puts(b, "],\"next_runs\":[");
		for (int k = 0; k < nn && !rc; k++)
			rc = (k ? pp_buf_putc(b, ',') : 0) ?: pp_buf_putc(b, '{') ?:
			     put_str(b, "id", next[k].id, false) ?:
			     put_str(b, "waiting", next[k].waiting, true) ?:
			     put_time(b, "scheduled", next[k].scheduled_ms) ?: pp_buf_putc(b, '}');
		pp_run_recs_free(next, nn);
		rc = rc ?: pp_buf_puts(b, "]}");
	}
	rc = rc ?: pp_buf_puts(b, "]}\n");
	pp_dep_recs_free(d, n);
	if (rc)
		answer_error(resp, 500, "deployments: %s", err.msg[0] ? err.msg : pp_strerror(rc));
}

static void api_activity(struct pp_ui *ui, struct pp_metrics_resp *resp)
{
	struct pp_metrics_minute *mins = calloc(PP_METRICS_ACTIVITY_MINUTES, sizeof(*mins));
	if (!mins) {
		answer_error(resp, 500, "out of memory");
		return;
	}
	size_t n = pp_metrics_activity(ui->metrics, mins);
	struct pp_buf *b = &resp->body;
	int rc = pp_buf_puts(b, "{\"minutes\":[");
	for (size_t i = 0; i < n && !rc; i++) {
		const struct pp_metrics_minute *a = &mins[i];
		rc = pp_buf_printf(b,
				   "%s{\"t\":%lld,\"started\":%lu,\"succeeded\":%lu,\"failed\":%lu,"
				   "\"cancelled\":%lu,\"delay_avg\":%.3f,\"delay_max\":%.3f}",
				   i ? "," : "", (long long)a->minute * 60, a->started,
				   a->succeeded, a->failed, a->cancelled,
				   a->delay_count ? a->delay_sum / (double)a->delay_count : 0,
				   a->delay_max);
	}
	rc = rc ?: pp_buf_puts(b, "]}\n");
	free(mins);
	if (rc)
		answer_error(resp, 500, "activity: %s", pp_strerror(rc));
}

/* /api/runs/ID/logs, answered without ui->mu held (api_run_logs). */
static void run_logs_route(struct pp_ui *ui, const char *id, size_t len,
			   struct pp_metrics_resp *resp)
{
	char buf[PP_ID_LEN];
	resp->content_type = "application/json";
	if (len == 0 || len >= sizeof(buf) || strspn(id, "0123456789abcdef-") != len) {
		answer_error(resp, 400, "run id: expected a run id or a unique prefix");
		return;
	}
	snprintf(buf, sizeof(buf), "%.*s", (int)len, id);
	api_run_logs(ui, buf, resp);
}

void pp_ui_answer(void *arg, const struct pp_metrics_req *req, struct pp_metrics_resp *resp)
{
	struct pp_ui *ui = arg;
	size_t h = 0;
	resp->headers[h++] = "X-Content-Type-Options: nosniff";
	resp->headers[h++] = "Referrer-Policy: no-referrer";
	resp->headers[h++] = "Cache-Control: no-store";
	if (!authorized(ui, req->authorization)) {
		resp->headers[h++] =
			"WWW-Authenticate: Basic realm=\"pushpool\", charset=\"UTF-8\"";
		answer_error(resp, 401,
			     "this status page needs the token of ui_token_file (as a Bearer "
			     "token, or as the password of Basic authentication)");
		return;
	}
	const char *url = req->url;
	const char *logs = !strncmp(url, "/api/runs/", 10) ? strstr(url + 10, "/logs") : NULL;
	if (logs && !strcmp(logs, "/logs")) {
		run_logs_route(ui, url + 10, (size_t)(logs - (url + 10)), resp);
		return;
	}
	pthread_mutex_lock(&ui->mu);
	if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
		resp->content_type = "text/html; charset=utf-8";
		/* Hashed for the first page served, not at startup: hashing sets
		 * up OpenSSL (about 2 MiB of its pages), which a daemon with
		 * nothing due has no other use for. */
		struct pp_error err = {0};
		if (!ui->csp[0] && build_csp(ui, &err)) {
			answer_error(resp, 500, "%s", err.msg);
		} else {
			resp->headers[h++] = ui->csp;
			if (pp_buf_append(&resp->body, pp_ui_page, pp_ui_page_len))
				answer_error(resp, 500, "out of memory");
		}
	} else if (!strncmp(url, "/api/", 5)) {
		resp->content_type = "application/json";
		const char *what = url + 5;
		if (!strcmp(what, "pools"))
			api_pools(ui, resp);
		else if (!strcmp(what, "runs"))
			api_runs(ui, req, resp);
		else if (!strncmp(what, "runs/", 5))
			api_run(ui, what + 5, resp);
		else if (!strcmp(what, "activity"))
			api_activity(ui, resp);
		else if (!strcmp(what, "deployments"))
			api_deployments(ui, resp);
		else
			answer_error(resp, 404,
				     "no such API: try /api/pools, /api/runs, /api/runs/ID, "
				     "/api/runs/ID/logs, /api/deployments, /api/activity");
	} else {
		answer_error(resp, 404, "not found: the status page is /, its data under /api/");
	}
	pthread_mutex_unlock(&ui->mu);
}
