/* Microbenchmarks linked to libpushpool.a: µs per render of each pool
 * type's default template (pool variables of tools/mock-env.sh), alone and
 * as a pool renders its runs (through its cache, warm), and µs per
 * SigV4 signature of an ECS RunTask request. Each comes with a floor
 * measured here: for a render, parsing and writing the rendered job (the
 * JSON work the output alone needs); for a signature, the bare OpenSSL work
 * any SigV4 signer does (two SHA-256 digests, five HMACs). Prints one JSON
 * object per figure. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "lib/log.h"
#include "render/render.h"

/* Best of ROUNDS rounds of at least ROUND_SECONDS each: the machine is
 * shared, and the fastest round is the one least disturbed. */
#define ROUNDS	      15
#define ROUND_SECONDS 0.03

/* CPU time of this thread: on a shared machine, wall time would count the
 * time other processes held the core. */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct render_case {
	const char *type;
	const char *vars;
};

static const struct render_case render_cases[] = {
	{"cloud-run-v2:push", "{\"region\": \"europe-west1\", \"image\": \"repo/flows:1\"}"},
	{"ecs:push", "{\"cluster\": \"default\", \"image\": \"repo/flows:1\", "
		     "\"network_configuration\": {\"subnets\": [\"subnet-1\"], "
		     "\"assignPublicIp\": \"DISABLED\"}}"},
	{"azure-container-instance:push",
	 "{\"resource_group_name\": \"rg-flows\", \"subscription_id\": "
	 "\"00000000-1111-2222-3333-444444444444\", \"image\": \"repo/flows:1\"}"},
	{"modal:push", "{\"image\": \"python:3.12-slim\", \"command\": \"python -c 'print(42)'\"}"},
};

static const struct pp_run_ctx run_ctx = {
	.flow_run_id = "11111111-2222-4333-8444-555555555555",
	.flow_run_name = "bench",
	.work_pool_name = "bench-pool",
};

typedef int (*op_fn)(void *arg);

/* µs per call of op, or -1 when op failed. */
static double best_us(op_fn op, void *arg)
{
	double best = -1;
	for (int r = 0; r < ROUNDS; r++) {
		long n = 0;
		double t0 = now_s(), t;
		do {
			for (int i = 0; i < 32; i++, n++)
				if (op(arg))
					return -1;
		} while ((t = now_s() - t0) < ROUND_SECONDS);
		double us = t * 1e6 / (double)n;
		if (best < 0 || us < best)
			best = us;
	}
	return best;
}

static int fail(const char *what, const struct pp_error *err)
{
	fprintf(stderr, "micro: %s: %s\n", what, err->msg);
	return 1;
}

struct render_args {
	const struct pp_json *tmpl, *vars;
	const char *text; /* the rendered job, for the JSON floor */
	struct pp_render_cache *cache;
	struct pp_error err;
};

static int render_once(void *arg)
{
	struct render_args *a = arg;
	struct pp_json *job = NULL;
	int rc = pp_render_job(a->tmpl, a->vars, NULL, NULL, &run_ctx, &job, &a->err);
	pp_json_free(job);
	return rc;
}

/* As serve renders a pool's runs: through the pool's cache, whose entry
 * for these variables is warm after the first two renders. */
static int render_cached_once(void *arg)
{
	struct render_args *a = arg;
	struct pp_json *job = NULL;
	int rc = pp_render_job_cached(a->cache, NULL, NULL, &run_ctx, &job, &a->err);
	pp_json_free(job);
	return rc;
}

static int json_roundtrip(void *arg)
{
	struct render_args *a = arg;
	struct pp_json *copy = NULL;
	int rc = pp_json_parse(a->text, strlen(a->text), NULL, &copy, &a->err);
	char *again = rc ? NULL : pp_json_to_string(copy, PP_JSON_COMPACT);
	if (!rc && !again)
		rc = pp_fail(&a->err, PP_ENOMEM, "out of memory");
	free(again);
	pp_json_free(copy);
	return rc;
}

static int bench_render(const struct render_case *c)
{
	struct render_args a = {0};
	struct pp_json *tmpl = NULL, *vars = NULL, *job = NULL;
	char *text = NULL;
	int rc = pp_template_default(c->type, &tmpl, &a.err);
	if (!rc)
		rc = pp_json_parse(c->vars, strlen(c->vars), NULL, &vars, &a.err);
	a.tmpl = tmpl;
	a.vars = vars;
	if (!rc)
		rc = pp_render_job(tmpl, vars, NULL, NULL, &run_ctx, &job, &a.err);
	if (!rc && !(text = pp_json_to_string(job, PP_JSON_COMPACT)))
		rc = pp_fail(&a.err, PP_ENOMEM, "out of memory");
	a.text = text;
	double us = rc ? -1 : best_us(render_once, &a);
	if (us >= 0 && !(a.cache = pp_render_cache_new(tmpl, vars)))
		us = -1;
	double cached_us = us < 0 ? -1 : best_us(render_cached_once, &a);
	double floor_us = cached_us < 0 ? -1 : best_us(json_roundtrip, &a);
	if (floor_us >= 0)
		printf("{\"figure\":\"render\",\"type\":\"%s\",\"us\":%.2f,\"cached_us\":%.2f,"
		       "\"baseline_us\":%.2f,\"job_bytes\":%zu}\n",
		       c->type, us, cached_us, floor_us, strlen(text));
	pp_render_cache_free(a.cache);
	free(text);
	pp_json_free(job);
	pp_json_free(tmpl);
	pp_json_free(vars);
	return floor_us < 0 ? fail(c->type, &a.err) : 0;
}

static const char run_task_body[] =
	"{\"launchType\":\"FARGATE\",\"overrides\":{\"containerOverrides\":[{\"name\":\"prefect\","
	"\"command\":[\"prefect\",\"flow-run\",\"execute\"]}]},\"cluster\":\"default\","
	"\"networkConfiguration\":{\"awsvpcConfiguration\":{\"subnets\":[\"subnet-1\"],"
	"\"assignPublicIp\":\"DISABLED\"}},\"tags\":[{\"key\":\"pushpool:run-id\",\"value\":"
	"\"11111111-2222-4333-8444-555555555555\"}],\"startedBy\":"
	"\"pp-11111111222243338444555555555555-1\",\"clientToken\":"
	"\"pp-11111111222243338444555555555555-1\",\"taskDefinition\":"
	"\"arn:aws:ecs:us-east-1:000000000000:task-definition/pushpool-c124fad4dd22f5d6:1\"}";

static void hmac(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char *out)
{
	unsigned int n = 32;
	HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &n);
}

/* What every signer must compute at least: payload and canonical-request
 * digests, the four-step key derivation and the final HMAC. */
static void sigv4_floor(const char *secret, const char *canonical, const char *sts_prefix)
{
	unsigned char d[32], k[32];
	char hex[65], sts[512], key[128];
	SHA256((const unsigned char *)run_task_body, sizeof(run_task_body) - 1, d);
	SHA256((const unsigned char *)canonical, strlen(canonical), d);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	snprintf(sts, sizeof(sts), "%s%s", sts_prefix, hex);
	snprintf(key, sizeof(key), "AWS4%s", secret);
	hmac(key, strlen(key), "20261129", 8, k);
	hmac(k, 32, "us-east-1", 9, k);
	hmac(k, 32, "ecs", 3, k);
	hmac(k, 32, "aws4_request", 12, k);
	hmac(k, 32, sts, strlen(sts), d);
}

struct sigv4_args {
	struct pp_sigv4_input in;
	char canonical[4096], sts_prefix[256];
	struct pp_error err;
};

static int sign_once(void *arg)
{
	struct sigv4_args *a = arg;
	struct pp_sigv4_output out;
	pp_sigv4_output_init(&out);
	int rc = pp_sigv4_sign(&a->in, &out, &a->err);
	pp_sigv4_output_free(&out);
	return rc;
}

static int floor_once(void *arg)
{
	struct sigv4_args *a = arg;
	sigv4_floor(a->in.secret_access_key, a->canonical, a->sts_prefix);
	return 0;
}

static int bench_sigv4(void)
{
	static const char *const names[] = {"Content-Type", "Host", "X-Amz-Date", "X-Amz-Target"};
	static const char *const values[] = {"application/x-amz-json-1.1",
					     "ecs.us-east-1.amazonaws.com", "20261129T063000Z",
					     "AmazonEC2ContainerServiceV20141113.RunTask"};
	struct sigv4_args a = {
		.in = {
			.method = "POST",
			.path = "/",
			.query = NULL,
			.header_names = names,
			.header_values = values,
			.nheaders = 4,
			.payload = run_task_body,
			.payload_len = sizeof(run_task_body) - 1,
			.access_key_id = "AKIDEXAMPLE",
			.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
			.region = "us-east-1",
			.service = "ecs",
			.when = 1795933800,
			.normalize_path = true,
		}};
	/* The floor hashes the very canonical request and string-to-sign
	 * prefix that pp_sigv4_sign produces. */
	struct pp_sigv4_output out;
	pp_sigv4_output_init(&out);
	int rc = pp_sigv4_sign(&a.in, &out, &a.err);
	if (!rc) {
		snprintf(a.canonical, sizeof(a.canonical), "%s",
			 pp_buf_str(&out.canonical_request));
		const char *sts = pp_buf_str(&out.string_to_sign);
		const char *last_nl = strrchr(sts, '\n');
		snprintf(a.sts_prefix, sizeof(a.sts_prefix), "%.*s",
			 last_nl ? (int)(last_nl - sts + 1) : 0, sts);
	}
	pp_sigv4_output_free(&out);
	double us = rc ? -1 : best_us(sign_once, &a);
	if (us < 0)
		return fail("sigv4", &a.err);
	printf("{\"figure\":\"sigv4\",\"us\":%.2f,\"baseline_us\":%.2f}\n", us,
	       best_us(floor_once, &a));
	return 0;
}

int main(void)
{
	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, stderr);
	int rc = 0;
	for (size_t i = 0; i < sizeof(render_cases) / sizeof(render_cases[0]); i++)
		rc |= bench_render(&render_cases[i]);
	rc |= bench_sigv4();
	return rc;
}
