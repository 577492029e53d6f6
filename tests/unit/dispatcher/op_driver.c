/* The provider-op driver against a local HTTP server: credentials applied
 * before sending, retries, backoff, Retry-After, budgets, 401 refresh,
 * waits, many ops at once, the lease bound holding across a slow token
 * fetch, and ops abandoned in every phase never calling back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "dispatcher/op_driver.h"
#include "lib/http.h"
#include "lib/log.h"
#define HS_FAKE_SERVER_VIEW
#include "tests/unit/http_server.h"

/* ---- scripted answers ---- */

struct script {
	int n;
	int next;
	struct {
		int status;
		const char *body;
		const char *retry_after;
	} steps[8];
};

static void scripted(const struct fs_request *req, struct fs_response *resp, void *ud)
{
	struct script *sc = ud;
	int i = sc->next < sc->n ? sc->next : sc->n - 1;
	(void)req;
	sc->next++;
	resp->status = sc->steps[i].status;
	snprintf(resp->body, sizeof(resp->body), "%s",
		 sc->steps[i].body ? sc->steps[i].body : "{}");
	if (sc->steps[i].retry_after)
		snprintf(resp->retry_after, sizeof(resp->retry_after), "%s",
			 sc->steps[i].retry_after);
}

/* ---- the waits the driver chose ---- */

/* From waits_begin to waits_end the log goes to a buffer, and waits_end
 * reads the waits the driver logged ("retrying in N ms"): what its
 * backoff decided, whatever time a busy machine took to carry it out, so
 * the tests below bound decisions rather than the wall clock. */
struct waits {
	FILE *out;
	char *text;
	size_t len;
	int n;
	long sum, max;
};

static void waits_begin(struct waits *w)
{
	memset(w, 0, sizeof(*w));
	w->out = open_memstream(&w->text, &w->len);
	assert_non_null(w->out);
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, w->out);
}

static void waits_end(struct waits *w)
{
	static const char said[] = ": retrying in ";
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, stderr);
	fclose(w->out);
	for (const char *p = w->text; (p = strstr(p, said)); p++) {
		long ms = strtol(p + strlen(said), NULL, 10);
		w->n++;
		w->sum += ms;
		if (ms > w->max)
			w->max = ms;
	}
	free(w->text);
}

/* ---- a minimal provider: one GET, the body becomes the message ---- */

struct fake_state {
	int calls;
};

static int fake_submit(struct pp_run_io *io, struct pp_error *err)
{
	char url[256];
	(void)err;
	if (!io->resp) {
		snprintf(url, sizeof(url), "%s/thing", io->endpoint);
		pp_http_req_init(&io->req, "GET", url);
		return PP_STEP_SEND;
	}
	if (io->resp_rc)
		return io->resp_rc;
	pp_set_message(io, "%s", pp_buf_str(&io->resp->body));
	return PP_STEP_DONE;
}

/* Waits once before sending, to exercise PP_STEP_WAIT timers. */
static int fake_status(struct pp_run_io *io, struct pp_error *err)
{
	struct fake_state *st = io->state;
	if (st->calls++ == 0) {
		io->poll_after_ms = 80;
		return PP_STEP_WAIT;
	}
	return fake_submit(io, err);
}

/* Single flight, as ECS registers a task definition: one op (remove, here)
 * does the shared work and marks it done when its answer comes; list ops
 * wait for it as peers, with a poll time far longer than any test waits,
 * so only being woken lets them finish. */
static bool shared_work_done;

static int fake_shared_work(struct pp_run_io *io, struct pp_error *err)
{
	int rc = fake_submit(io, err);
	if (io->resp && !io->resp_rc)
		shared_work_done = true;
	return rc;
}

static int fake_wait_for_peer(struct pp_run_io *io, struct pp_error *err)
{
	struct fake_state *st = io->state;
	st->calls++;
	if (!shared_work_done) {
		io->poll_after_ms = 60000;
		return PP_STEP_WAIT_PEER;
	}
	return fake_submit(io, err);
}

/* Waits once, then is done without a request. */
static int fake_wait_then_done(struct pp_run_io *io, struct pp_error *err)
{
	struct fake_state *st = io->state;
	(void)err;
	if (st->calls++ == 0) {
		io->poll_after_ms = 20;
		return PP_STEP_WAIT;
	}
	return PP_STEP_DONE;
}

static const char *const fake_types[] = {"fake:push", NULL};

static const struct pp_provider fake_provider = {
	.abi = PP_PROVIDER_ABI,
	.name = "fake",
	.pool_types = fake_types,
	.state_size = sizeof(struct fake_state),
	.submit = fake_submit,
	.status = fake_status,
	.list = fake_wait_for_peer,
	.remove = fake_shared_work,
	.cleanup = fake_wait_then_done,
};

struct fixture {
	struct fake_server srv;
	struct script sc;
	struct fake_state st;
	struct pp_run_io io;
};

static void io_init(struct fixture *f, struct pp_run_io *io, struct fake_state *st)
{
	memset(io, 0, sizeof(*io));
	memset(st, 0, sizeof(*st));
	io->run_id = "0b7e1a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
	io->attempt = 1;
	io->endpoint = f->srv.base;
	io->state = st;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || fs_start(&f->srv, scripted, &f->sc))
		return -1;
	io_init(f, &f->io, &f->st);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	fs_stop(&f->srv);
	pp_run_io_free_strings(&f->io);
	free(f);
	return 0;
}

static void add_step(struct script *sc, int status, const char *body, const char *retry_after)
{
	sc->steps[sc->n].status = status;
	sc->steps[sc->n].body = body;
	sc->steps[sc->n].retry_after = retry_after;
	sc->n++;
}

static void test_retry_503_then_success(void **state)
{
	struct fixture *f = *state;
	struct pp_exec_policy pol = {.base_ms = 10, .cap_ms = 20};
	struct pp_error err = {0};
	add_step(&f->sc, 503, "{\"error\":\"busy\"}", NULL);
	add_step(&f->sc, 503, "{\"error\":\"busy\"}", NULL);
	add_step(&f->sc, 200, "{\"ok\":true}", NULL);

	int rc = pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err);
	assert_int_equal(rc, 0);
	assert_int_equal(fs_count(&f->srv, NULL), 3);
	assert_string_equal(f->io.message, "{\"ok\":true}");
	assert_null(f->io.req.url); /* the driver released the last request */
}

static void test_retry_after_is_a_floor(void **state)
{
	struct fixture *f = *state;
	/* Without the header the backoff would be at most 2 ms. */
	struct pp_exec_policy pol = {.base_ms = 1, .cap_ms = 2};
	struct pp_error err = {0};
	add_step(&f->sc, 429, "{\"error\":\"slow down\"}", "1");
	add_step(&f->sc, 200, "{}", NULL);

	struct waits w;
	waits_begin(&w);
	int rc = pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err);
	waits_end(&w);
	assert_int_equal(rc, 0);
	assert_int_equal(fs_count(&f->srv, NULL), 2);
	/* One wait, the header's second, and it was kept: a machine can
	 * run late, never early. */
	assert_int_equal(w.n, 1);
	assert_int_equal(w.max, 1000);
	long long gap = f->srv.log[1].at_ms - f->srv.log[0].at_ms;
	assert_true(gap >= 990);
}

static void test_client_error_fails_at_once(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	add_step(&f->sc, 400, "{\"message\":\"image is required\"}", NULL);

	int rc = pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, NULL, &err);
	assert_int_equal(rc, PP_EINVALID);
	assert_int_equal(fs_count(&f->srv, NULL), 1);
	assert_non_null(strstr(err.msg, "image is required"));
	assert_non_null(strstr(err.msg, "HTTP 400"));
}

static void test_budget_exhaustion(void **state)
{
	struct fixture *f = *state;
	struct pp_exec_policy pol = {
		.max_attempts = 50, .base_ms = 200, .cap_ms = 200, .budget_ms = 500};
	struct pp_error err = {0};
	add_step(&f->sc, 503, "{}", NULL);

	struct waits w;
	waits_begin(&w);
	int rc = pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err);
	waits_end(&w);
	assert_int_equal(rc, PP_ETRANSIENT);
	assert_non_null(strstr(err.msg, "budget"));
	/* Every wait it chose fits in the budget. The tries are the first
	 * and one after each wait, but for a last wait that a busy machine
	 * ended past the budget: then it gives up without trying. */
	assert_true(w.sum <= 500);
	assert_true(w.max <= 200);
	assert_true(fs_count(&f->srv, NULL) >= w.n);
	assert_true(fs_count(&f->srv, NULL) <= w.n + 1);
	assert_true(fs_count(&f->srv, NULL) >= 2);
	assert_true(fs_count(&f->srv, NULL) < 50);
}

static void test_max_attempts(void **state)
{
	struct fixture *f = *state;
	struct pp_exec_policy pol = {.max_attempts = 3, .base_ms = 1, .cap_ms = 5};
	struct pp_error err = {0};
	add_step(&f->sc, 502, "{}", NULL);

	int rc = pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err);
	assert_int_equal(rc, PP_ETRANSIENT);
	assert_int_equal(fs_count(&f->srv, NULL), 3);
	assert_non_null(strstr(err.msg, "gave up after 3 attempts"));
}

static void test_401_retries_once(void **state)
{
	struct fixture *f = *state;
	struct pp_exec_policy pol = {.base_ms = 1, .cap_ms = 5};
	struct pp_error err = {0};
	add_step(&f->sc, 401, "{}", NULL);
	add_step(&f->sc, 200, "{\"ok\":1}", NULL);
	assert_int_equal(pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err), 0);
	assert_int_equal(fs_count(&f->srv, NULL), 2);
}

static void test_401_twice_is_auth_error(void **state)
{
	struct fixture *f = *state;
	struct pp_exec_policy pol = {.base_ms = 1, .cap_ms = 5};
	struct pp_error err = {0};
	add_step(&f->sc, 401, "{\"message\":\"token expired\"}", NULL);
	add_step(&f->sc, 401, "{\"message\":\"token expired\"}", NULL);
	add_step(&f->sc, 200, "{}", NULL);
	assert_int_equal(pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err),
			 PP_EAUTH);
	assert_int_equal(fs_count(&f->srv, NULL), 2);
	assert_non_null(strstr(err.msg, "token expired"));
}

static void test_transport_error_is_retried(void **state)
{
	struct fixture *f = *state;
	struct pp_exec_policy pol = {.max_attempts = 2, .base_ms = 1, .cap_ms = 5};
	struct pp_error err = {0};
	/* Port 1 on loopback: connection refused. */
	f->io.endpoint = "http://127.0.0.1:1";
	int rc = pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err);
	assert_int_equal(rc, PP_ETRANSIENT);
	assert_non_null(strstr(err.msg, "gave up after 2 attempts"));
	assert_non_null(strstr(err.msg, "127.0.0.1:1"));
}

static void test_wait_step_uses_a_timer(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	add_step(&f->sc, 200, "{\"state\":\"RUNNING\"}", NULL);
	long long t0 = fs_now_ms();
	assert_int_equal(pp_exec_run_op(&fake_provider, PP_OP_STATUS, &f->io, NULL, &err), 0);
	assert_true(f->srv.log[0].at_ms - t0 >= 80);
	assert_int_equal(f->st.calls, 3); /* wait, send, consume */
}

struct many {
	int done, failed;
};

static void many_done(void *ud, int rc, const struct pp_error *err)
{
	struct many *m = ud;
	m->done++;
	if (rc)
		m->failed++;
	assert_true(rc == 0 || err != NULL);
}

static void test_many_ops_share_one_driver(void **state)
{
	struct fixture *f = *state;
	enum { N = 40 };
	struct pp_run_io ios[N];
	struct fake_state sts[N];
	struct many m = {0};
	struct pp_error err = {0};
	add_step(&f->sc, 503, "{}", NULL);
	add_step(&f->sc, 200, "{\"ok\":1}", NULL);

	struct pp_exec *x = pp_exec_new();
	assert_non_null(x);
	struct pp_exec_policy pol = {.base_ms = 5, .cap_ms = 20};
	for (int i = 0; i < N; i++) {
		io_init(f, &ios[i], &sts[i]);
		assert_int_equal(pp_exec_start(x, &fake_provider, PP_OP_SUBMIT, &ios[i], &pol,
					       many_done, &m, &err),
				 0);
	}
	assert_int_equal(pp_exec_active(x), N);
	for (int i = 0; i < 100 && pp_exec_poll(x, 100) > 0; i++)
		;
	assert_int_equal(m.done, N);
	assert_int_equal(m.failed, 0);
	struct pp_exec_stats s;
	pp_exec_stats(x, &s);
	assert_int_equal(s.requests, N + 1);
	assert_int_equal(s.retries, 1);
	unsigned long in_buckets = 0;
	for (int i = 0; i < 12; i++)
		in_buckets += s.latency_buckets[i];
	assert_int_equal(in_buckets, s.requests);
	pp_exec_free(x);
	for (int i = 0; i < N; i++)
		pp_run_io_free_strings(&ios[i]);
}

/* Peers waiting on another op's work go on as soon as its answer has come,
 * each called once to wait, once to send and once with its answer: their
 * own calls wake nobody. */
static void test_peer_answer_wakes_waiters(void **state)
{
	struct fixture *f = *state;
	enum { WAITERS = 3 };
	struct pp_run_io ios[WAITERS];
	struct fake_state sts[WAITERS];
	struct many m = {0};
	struct pp_error err = {0};
	add_step(&f->sc, 200, "{}", NULL);
	shared_work_done = false;

	struct pp_exec *x = pp_exec_new();
	assert_non_null(x);
	for (int i = 0; i < WAITERS; i++) {
		io_init(f, &ios[i], &sts[i]);
		assert_int_equal(pp_exec_start(x, &fake_provider, PP_OP_LIST, &ios[i], NULL,
					       many_done, &m, &err),
				 0);
	}
	assert_int_equal(pp_exec_poll(x, 0), WAITERS);
	for (int i = 0; i < WAITERS; i++)
		assert_int_equal(sts[i].calls, 1);
	assert_int_equal(
		pp_exec_start(x, &fake_provider, PP_OP_REMOVE, &f->io, NULL, many_done, &m, &err),
		0);
	long long t0 = fs_now_ms();
	while (pp_exec_active(x) && fs_now_ms() - t0 < 10000)
		pp_exec_poll(x, 100);
	assert_int_equal(m.done, WAITERS + 1);
	assert_int_equal(m.failed, 0);
	assert_true(shared_work_done);
	for (int i = 0; i < WAITERS; i++) {
		assert_int_equal(sts[i].calls, 3);
		pp_run_io_free_strings(&ios[i]);
	}
	pp_exec_free(x);
}

static void test_unsupported_op_is_refused(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct pp_exec *x = pp_exec_new();
	struct many m = {0};
	assert_int_equal(
		pp_exec_start(x, &fake_provider, PP_OP_CANCEL, &f->io, NULL, many_done, &m, &err),
		PP_EINVALID);
	assert_non_null(strstr(err.msg, "does not support cancel"));
	assert_int_equal(pp_exec_active(x), 0);
	pp_exec_free(x);
}

/* The lease bound: no op starts once it has passed, and an op that started
 * before it sends nothing after it, however much budget is left. */
static void test_not_after_bounds_ops(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct many m = {0};
	struct pp_exec *x = pp_exec_new();
	assert_non_null(x);
	add_step(&f->sc, 503, "{}", NULL);

	struct pp_exec_policy pol = {
		.max_attempts = 100000, .base_ms = 20, .cap_ms = 20, .budget_ms = 60000};
	pol.not_after_ms = fs_now_ms() - 1;
	assert_int_equal(
		pp_exec_start(x, &fake_provider, PP_OP_SUBMIT, &f->io, &pol, many_done, &m, &err),
		PP_ETRANSIENT);
	assert_non_null(strstr(err.msg, "lease lapsed"));
	assert_int_equal(fs_count(&f->srv, NULL), 0);

	/* Retrying a 503 every 20 ms or less, with a minute of budget and no
	 * attempt limit to speak of: the bound ends it after a second. (At
	 * 300 ms, two clean-clone `make test` runs and `make check` side by
	 * side once let the first attempt alone use it up.) */
	pol.not_after_ms = fs_now_ms() + 1000;
	struct waits w;
	waits_begin(&w);
	assert_int_equal(
		pp_exec_start(x, &fake_provider, PP_OP_SUBMIT, &f->io, &pol, many_done, &m, &err),
		0);
	/* A count, not a time, guards against a driver that never ends. */
	for (int i = 0; i < 1000 && !m.failed && pp_exec_poll(x, 100) > 0; i++)
		;
	waits_end(&w);
	assert_int_equal(m.failed, 1);
	/* The waits it took fit before the bound; a minute of budget
	 * would have allowed 3,000 of them. */
	assert_true(w.sum <= 1000);
	assert_true(fs_count(&f->srv, NULL) >= 2);
	pp_exec_free(x);
}

/* Static AWS keys: signing needs no server of its own. region NULL: the
 * credential has none, so applying it fails. */
static struct pp_cred *aws_cred(struct pp_cred_conf *c, const char *name, const char *akid,
				const char *region)
{
	struct pp_cred *cred = NULL;
	struct pp_error err = {0};
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->type = (char *)"aws";
	c->source = (char *)"static";
	c->access_key_id = (char *)akid;
	c->secret_access_key = (char *)"op-driver-test-secret";
	if (!region) {
		/* Nor may the environment or a profile supply one. */
		unsetenv("AWS_REGION");
		unsetenv("AWS_DEFAULT_REGION");
		setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config", 1);
		setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials", 1);
	}
	if (pp_cred_new(c, &cred, &err))
		fail_msg("%s", err.msg);
	if (region)
		pp_cred_set_scope(cred, region, "ecs");
	return cred;
}

static void test_credentials_applied_before_sending(void **state)
{
	struct fixture *f = *state;
	struct pp_exec_policy pol = {.base_ms = 1, .cap_ms = 5};
	struct pp_error err = {0};
	struct pp_cred_conf pool_conf, run_conf, bad_conf;
	struct pp_cred *pool = aws_cred(&pool_conf, "pool", "AKIDPOOL", "us-east-1");
	struct pp_cred *run = aws_cred(&run_conf, "the-run", "AKIDRUN", "us-east-1");
	struct pp_cred *bad = aws_cred(&bad_conf, "regionless", "AKIDBAD", NULL);
	add_step(&f->sc, 200, "{}", NULL);

	/* The pool's credential signs what the provider built unsigned. */
	f->io.cred = pool;
	assert_int_equal(pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err), 0);
	assert_int_equal(fs_count(&f->srv, NULL), 1);
	assert_non_null(strstr(f->srv.log[0].auth, "Credential=AKIDPOOL/"));

	/* A run's own credential wins over the pool's. */
	f->io.run_cred = run;
	assert_int_equal(pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err), 0);
	assert_int_equal(fs_count(&f->srv, NULL), 2);
	assert_non_null(strstr(f->srv.log[1].auth, "Credential=AKIDRUN/"));

	/* When it cannot be applied nothing is sent, and the error names it. */
	f->io.run_cred = bad;
	assert_int_equal(pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &f->io, &pol, &err),
			 PP_EINVALID);
	assert_int_equal(fs_count(&f->srv, NULL), 2);
	assert_non_null(strstr(err.msg, "regionless: "));
	assert_non_null(strstr(err.msg, "no AWS region"));
	pp_cred_free(pool);
	pp_cred_free(run);
	pp_cred_free(bad);
}

static void test_backoff_bounds(void **state)
{
	(void)state;
	for (int attempt = 0; attempt < 8; attempt++) {
		long bound = 100L << attempt;
		if (bound > 1000)
			bound = 1000;
		double sum = 0;
		long lo = bound, hi = 0;
		for (int i = 0; i < 4000; i++) {
			long d = pp_backoff_ms(attempt, 100, 1000, 0);
			assert_true(d >= 0 && d <= bound);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			sum += (double)d;
		}
		/* Full jitter: uniform over [0, bound], so the mean is near
		 * bound/2 and the samples span most of the range. */
		double mean = sum / 4000;
		assert_true(mean > bound * 0.4 && mean < bound * 0.6);
		assert_true(lo < bound / 10 + 1 && hi > bound * 9 / 10);
	}
	for (int i = 0; i < 100; i++)
		assert_int_equal(pp_backoff_ms(3, 100, 1000, 5000), 5000);
	for (int i = 0; i < 100; i++) {
		long d = pp_backoff_ms(1000, 100, 1000, 300);
		assert_true(d >= 300 && d <= 1000);
	}
}

/* ---- a request that needs a token, whose endpoint answers late ---- */

struct late_token {
	long long answer_at_ms; /* monotonic */
};

/* Entra ID's token endpoint, answering only once answer_at_ms has passed:
 * a fetch a SIGSTOP (or a slow identity provider) held up that long. */
static void late_token(const struct fs_request *req, struct fs_response *resp, void *ud)
{
	const struct late_token *t = ud;
	if (!strstr(req->url, "/oauth2/v2.0/token")) {
		snprintf(resp->body, sizeof(resp->body), "{\"created\":true}");
		return;
	}
	while (fs_now_ms() < t->answer_at_ms) {
		struct timespec ts = {.tv_nsec = 5 * 1000000L};
		nanosleep(&ts, NULL);
	}
	snprintf(resp->body, sizeof(resp->body),
		 "{\"token_type\":\"Bearer\",\"expires_in\":3599,"
		 "\"access_token\":\"eyJ0.late-token\"}");
}

static int count_path(struct fake_server *s, const char *needle)
{
	int n = 0;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->count; i++)
		n += strstr(s->log[i].url, needle) != NULL;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* pg_dispatch.sh's late Cloud Run create: a dispatcher stopped while it
 * fetched the token for a create resumed past its lease, and the transfer
 * got a deadline counted from the end of the fetch, so the create went
 * out after another dispatcher had run and deleted that job. The bound an
 * op starts under holds for every request it makes, token fetch or not. */
static void test_late_token_does_not_extend_the_bound(void **state)
{
	(void)state;
	struct fake_server srv;
	struct late_token t = {0};
	struct pp_cred_conf conf;
	struct pp_cred *cred = NULL;
	struct pp_run_io io;
	struct fake_state st;
	struct pp_error err = {0};

	assert_int_equal(fs_start(&srv, late_token, &t), 0);
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.name, sizeof(conf.name), "late");
	conf.type = (char *)"azure";
	conf.source = (char *)"secret";
	conf.tenant_id = (char *)"5d1b0e4c-late-token-tenant";
	conf.client_id = (char *)"late-token-client";
	conf.client_secret = (char *)"late-token-secret-value";
	conf.subscription_id = (char *)"sub-late";
	conf.authority = srv.base;
	assert_int_equal(pp_cred_new(&conf, &cred, &err), 0);
	memset(&io, 0, sizeof(io));
	memset(&st, 0, sizeof(st));
	io.run_id = "0b7e1a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
	io.attempt = 1;
	io.endpoint = srv.base;
	io.state = &st;
	io.cred = cred;

	/* A minute of budget, but a lease bound 1 s away; the token arrives
	 * after it. */
	long long t0 = fs_now_ms();
	struct pp_exec_policy pol = {.base_ms = 1, .cap_ms = 5, .budget_ms = 60000};
	pol.not_after_ms = t0 + 1000;
	t.answer_at_ms = t0 + 1200;
	int rc = pp_exec_run_op(&fake_provider, PP_OP_SUBMIT, &io, &pol, &err);
	assert_int_equal(count_path(&srv, "/oauth2/v2.0/token"), 1);
	assert_int_equal(count_path(&srv, "/thing"), 0);
	assert_int_equal(rc, PP_ETRANSIENT);
	assert_non_null(strstr(err.msg, "not sent"));
	pp_cred_free(cred);
	fs_stop(&srv);
}

/* The gate (the loop's group commit) runs before anything is sent: while
 * it refuses (a commit failed), a poll sends nothing; once it lets go, the
 * request goes out. */
struct gate {
	struct fake_server *srv;
	int calls, sent_before, refuse;
};

static int gate_fn(void *ud)
{
	struct gate *g = ud;
	if (g->calls++ == 0)
		g->sent_before = fs_count(g->srv, NULL);
	return g->refuse;
}

static void gate_done(void *ud, int rc, const struct pp_error *err)
{
	(void)err;
	*(int *)ud = rc ? rc : 1;
}

static void test_gate_runs_before_sending(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	add_step(&f->sc, 200, "{\"ok\":true}", NULL);
	struct pp_exec *x = pp_exec_new();
	assert_non_null(x);
	struct gate g = {.srv = &f->srv, .refuse = PP_EIO};
	pp_exec_set_gate(x, gate_fn, &g);
	int done = 0;
	assert_int_equal(pp_exec_start(x, &fake_provider, PP_OP_SUBMIT, &f->io, NULL, gate_done,
				       &done, &err),
			 0);
	pp_exec_poll(x, 100);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.sent_before, 0);
	assert_int_equal(fs_count(&f->srv, NULL), 0);
	assert_int_equal(done, 0);
	g.refuse = 0;
	for (int i = 0; i < 50 && !done; i++)
		pp_exec_poll(x, 100);
	assert_int_equal(done, 1);
	assert_int_equal(fs_count(&f->srv, NULL), 1);
	assert_true(g.calls >= 2);
	pp_exec_free(x);
}

/* Holds requests to paths under /held until released (at most 10 s), so
 * that an op stays on the wire; answers the others from the script. */
struct hold {
	struct script *sc;
	int arrived, release;
};

static void holding(const struct fs_request *req, struct fs_response *resp, void *ud)
{
	struct hold *h = ud;
	if (!strncmp(req->url, "/held/", 6)) {
		__atomic_add_fetch(&h->arrived, 1, __ATOMIC_SEQ_CST);
		long long t0 = fs_now_ms();
		while (!__atomic_load_n(&h->release, __ATOMIC_SEQ_CST) && fs_now_ms() - t0 < 10000)
			usleep(1000);
	}
	scripted(req, resp, h->sc);
}

/* A run freed while an op of it is out (the loop leaves a run to recovery
 * when a queued write of it fails at the settle, whatever its status poll
 * is doing): pp_exec_abandon drops its ops, one with its request on the
 * wire and one waiting on a peer, and neither calls back into the freed
 * run; another run's op goes on. */
static void test_abandoned_ops_never_call_back(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct hold h = {.sc = &f->sc};
	char held_base[sizeof(f->srv.base) + 8];
	add_step(&f->sc, 200, "{\"ok\":1}", NULL);
	f->srv.handler = holding;
	f->srv.ud = &h;
	shared_work_done = false;
	snprintf(held_base, sizeof(held_base), "%s/held", f->srv.base);

	struct pp_exec *x = pp_exec_new();
	assert_non_null(x);
	/* On the heap and freed once abandoned: a call back would touch
	 * freed memory (valgrind and ASan in `make check`). */
	struct pp_run_io *sending = malloc(sizeof(*sending)), *waiting = malloc(sizeof(*waiting));
	struct fake_state *sts = malloc(2 * sizeof(*sts));
	assert_true(sending && waiting && sts);
	io_init(f, sending, &sts[0]);
	io_init(f, waiting, &sts[1]);
	sending->endpoint = held_base;
	struct many dropped = {0}, other = {0};
	assert_int_equal(pp_exec_start(x, &fake_provider, PP_OP_SUBMIT, sending, NULL, many_done,
				       &dropped, &err),
			 0);
	assert_int_equal(pp_exec_start(x, &fake_provider, PP_OP_LIST, waiting, NULL, many_done,
				       &dropped, &err),
			 0);
	assert_int_equal(pp_exec_start(x, &fake_provider, PP_OP_STATUS, &f->io, NULL, many_done,
				       &other, &err),
			 0);
	long long t0 = fs_now_ms();
	while (!__atomic_load_n(&h.arrived, __ATOMIC_SEQ_CST) && fs_now_ms() - t0 < 10000)
		pp_exec_poll(x, 10);
	assert_int_equal(h.arrived, 1);
	assert_int_equal(sts[1].calls, 1); /* waiting on its peer */

	pp_exec_abandon(x, &dropped);
	assert_int_equal(pp_exec_active(x), 1);
	assert_null(sending->req.url); /* freed, as done would have found it */
	pp_run_io_free_strings(sending);
	pp_run_io_free_strings(waiting);
	free(sending);
	free(waiting);
	free(sts);

	__atomic_store_n(&h.release, 1, __ATOMIC_SEQ_CST);
	t0 = fs_now_ms();
	while (pp_exec_active(x) && fs_now_ms() - t0 < 10000)
		pp_exec_poll(x, 100);
	assert_int_equal(other.done, 1);
	assert_int_equal(other.failed, 0);
	assert_int_equal(dropped.done, 0);
	pp_exec_poll(x, 50); /* nothing left to call anyone back */
	assert_int_equal(dropped.done, 0);
	pp_exec_free(x);
}

struct abandoner {
	struct pp_exec *x;
	const void *victim;
	int done;
};

static void abandon_done(void *ud, int rc, const struct pp_error *err)
{
	struct abandoner *ab = ud;
	(void)rc;
	(void)err;
	ab->done++;
	pp_exec_abandon(ab->x, ab->victim);
}

/* A done callback may abandon an op that the same pass has yet to reach
 * (the loop frees other runs as it learns that their writes failed): the
 * pass skips it, and it is freed later. */
static void test_abandon_from_a_callback(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct pp_run_io victim_io;
	struct fake_state victim_st;
	struct many victim = {0};
	struct pp_exec *x = pp_exec_new();
	assert_non_null(x);
	struct abandoner ab = {.x = x, .victim = &victim};
	io_init(f, &victim_io, &victim_st);
	/* Started first, so later in the list than the other: a pass reaches
	 * it after the other's callback. */
	assert_int_equal(pp_exec_start(x, &fake_provider, PP_OP_CLEANUP, &victim_io, NULL,
				       many_done, &victim, &err),
			 0);
	assert_int_equal(pp_exec_start(x, &fake_provider, PP_OP_CLEANUP, &f->io, NULL, abandon_done,
				       &ab, &err),
			 0);
	assert_int_equal(pp_exec_poll(x, 0), 2); /* both wait 20 ms */
	assert_int_equal(victim_st.calls, 1);
	/* Both due before the next pass. */
	long long t0 = fs_now_ms();
	while (fs_now_ms() - t0 < 60)
		usleep(1000);
	assert_int_equal(pp_exec_poll(x, 0), 0);
	assert_int_equal(ab.done, 1);
	assert_int_equal(victim_st.calls, 1); /* never called again */
	assert_int_equal(victim.done, 0);
	pp_exec_free(x);
	pp_run_io_free_strings(&victim_io);
}

/* A driver on a handle it shares (a run source's calls beside the ops):
 * its poll waits on the other's transfer with no op of its own and returns
 * when that one's callback wakes it; freed, it stops only its own
 * transfers, and the other's still completes on the handle. */
struct foreign {
	struct pp_exec *x;
	bool done;
	long status;
};

static void foreign_done(void *ud, struct pp_http_req *req, struct pp_http_resp *resp, int rc,
			 const struct pp_error *err)
{
	struct foreign *fo = ud;
	fo->done = true;
	fo->status = rc ? -1 : resp->status;
	if (fo->x)
		pp_exec_wake(fo->x);
}

static void test_shared_handle(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct hold h = {.sc = &f->sc};
	char held_base[sizeof(f->srv.base) + 8], url[sizeof(f->srv.base) + 16];
	add_step(&f->sc, 200, "{\"ok\":1}", NULL);
	f->srv.handler = holding;
	f->srv.ud = &h;
	snprintf(held_base, sizeof(held_base), "%s/held", f->srv.base);
	snprintf(url, sizeof(url), "%s/other", f->srv.base);

	struct pp_http_multi *m = pp_http_multi_new();
	struct pp_exec *x = pp_exec_new_on(m);
	assert_true(m && x);
	struct foreign fo = {.x = x};
	struct pp_http_req req;
	struct pp_http_resp resp;
	pp_http_req_init(&req, "GET", url);
	pp_http_resp_init(&resp, 0);
	assert_int_equal(pp_http_multi_add(m, &req, &resp, foreign_done, &fo, &err), 0);
	assert_int_equal(pp_exec_active(x), 0);
	/* Without the wake it would wait out its whole timeout. */
	long long t0 = fs_now_ms();
	pp_exec_poll(x, 60000);
	assert_true(fo.done);
	assert_int_equal(fo.status, 200);
	assert_true(fs_now_ms() - t0 < 30000);
	pp_http_req_free(&req);
	pp_http_resp_free(&resp);

	/* An op held at the server, and another transfer on the handle. */
	struct pp_run_io *held = malloc(sizeof(*held));
	struct fake_state st;
	assert_non_null(held);
	io_init(f, held, &st);
	held->endpoint = held_base;
	struct many dropped = {0};
	assert_int_equal(pp_exec_start(x, &fake_provider, PP_OP_SUBMIT, held, NULL, many_done,
				       &dropped, &err),
			 0);
	t0 = fs_now_ms();
	while (!__atomic_load_n(&h.arrived, __ATOMIC_SEQ_CST) && fs_now_ms() - t0 < 10000)
		pp_exec_poll(x, 10);
	assert_int_equal(h.arrived, 1);
	fo = (struct foreign){0};
	pp_http_req_init(&req, "GET", url);
	pp_http_resp_init(&resp, 0);
	assert_int_equal(pp_http_multi_add(m, &req, &resp, foreign_done, &fo, &err), 0);
	pp_exec_free(x);
	pp_run_io_free_strings(held);
	free(held);
	assert_int_equal(pp_http_multi_pending(m), 1);
	/* The fake server answers one request at a time: the held one goes
	 * first, to a transfer no longer there. */
	__atomic_store_n(&h.release, 1, __ATOMIC_SEQ_CST);
	t0 = fs_now_ms();
	while (!fo.done && fs_now_ms() - t0 < 10000)
		pp_http_multi_run(m, 100);
	assert_int_equal(fo.status, 200);
	assert_int_equal(dropped.done, 0);
	pp_http_req_free(&req);
	pp_http_resp_free(&resp);
	pp_http_multi_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_retry_503_then_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after_is_a_floor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_error_fails_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_exhaustion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_attempts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_401_retries_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_401_twice_is_auth_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transport_error_is_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_step_uses_a_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_answer_wakes_waiters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_ops_share_one_driver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_op_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_after_bounds_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials_applied_before_sending, setup,
						teardown),
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_late_token_does_not_extend_the_bound),
		cmocka_unit_test_setup_teardown(test_gate_runs_before_sending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abandoned_ops_never_call_back, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_abandon_from_a_callback, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
