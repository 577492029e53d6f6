/* libFuzzer entry for every provider's response parsers, driven through the
 * public ops with canned answers, as dispatcher/op_driver.c drives them. The first
 * byte picks the provider (Cloud Run, ECS, ACI, Modal); the rest is a list of
 * answers, each: status selector, flags, 16-bit body length, body. The job is
 * the pool type's default template rendered with the variables the mock
 * scenario tests use. Each input runs submit, status (twice), cancel and
 * cleanup, then restores a fresh run from the infrastructure id submit
 * produced and polls it: every parser sees hostile bytes, and every op must
 * end with DONE, SEND, WAIT or a negative code and a message.
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/op_driver.h"
#include "lib/grpc.h"
#include "lib/log.h"
#include "render/render.h"
#include "providers/provider.h"
#include "tests/fuzz/fuzz_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_STEPS 24

static const struct {
	const char *type;
	const char *vars;
} pools[] = {
	{"cloud-run-v2:push", "{\"region\": \"europe-west1\", \"image\": \"repo/flows:1\","
			      " \"credentials\": {\"project\": \"demo-proj\"}}"},
	{"ecs:push", "{\"cluster\": \"default\", \"image\": \"repo/flows:1\", "
		     "\"aws_credentials\": {\"region_name\": \"us-east-1\"}, "
		     "\"network_configuration\": {\"subnets\": [\"subnet-1\"]}}"},
	{"azure-container-instance:push",
	 "{\"resource_group_name\": \"rg\", \"subscription_id\": "
	 "\"00000000-1111-2222-3333-444444444444\", \"image\": \"repo/flows:1\"}"},
	{"modal:push", "{\"image\": \"python:3.12-slim\", \"command\": \"echo 42\"}"},
};
#define NPOOLS (sizeof(pools) / sizeof(pools[0]))

static struct pp_json *jobs[NPOOLS];
static const struct pp_provider *providers[NPOOLS];

static const long statuses[] = {200, 200, 200, 200, 201, 202, 204, 400, 401,
				403, 404, 409, 412, 429, 500, 503, 0};

struct answers {
	const uint8_t *p;
	size_t left;
};

/* The harness's own setup failing is a bug in the harness: stop loudly. */
static void setup_failed(const char *what, const struct pp_error *err)
{
	fprintf(stderr, "fuzz_provider setup: %s: %s\n", what, err->msg);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct pp_run_ctx ctx = {
		.flow_run_id = "6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5",
		.flow_run_name = "fuzz",
		.work_pool_name = "pool",
	};
	struct pp_error err = {0};
	/* The providers log what they do; keep the fuzzer's output readable. */
	FILE *devnull = fopen("/dev/null", "w");
	if (!devnull)
		abort();
	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, devnull);
	for (size_t i = 0; i < NPOOLS; i++) {
		struct pp_json *tmpl = NULL, *vars = NULL;
		providers[i] = pp_provider_find(pools[i].type);
		if (!providers[i])
			setup_failed(pools[i].type, &err);
		if (pp_template_default(pools[i].type, &tmpl, &err) ||
		    pp_json_parse(pools[i].vars, strlen(pools[i].vars), NULL, &vars, &err) ||
		    pp_render_job(tmpl, vars, NULL, NULL, &ctx, &jobs[i], &err))
			setup_failed(pools[i].type, &err);
		pp_json_free(vars);
		pp_json_free(tmpl);
	}
	return 0;
}

/* Next canned answer, or false when the input is used up. */
static bool next_answer(struct answers *a, bool grpc, struct pp_http_resp *r)
{
	if (a->left < 4)
		return false;
	long status = statuses[a->p[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	uint8_t flags = a->p[1];
	size_t len = (size_t)a->p[2] << 8 | a->p[3];
	a->p += 4;
	a->left -= 4;
	if (len > a->left)
		len = a->left;
	pp_http_resp_init(r, 1 << 20);
	r->status = status;
	if (!status)
		strcpy(r->transport_error, "Connection reset by peer");
	if (flags & 1)
		r->retry_after_ms = (long)(flags >> 1) * 10;
	if (grpc) {
		char code[8];
		snprintf(code, sizeof(code), "%d", (flags >> 2) % 17);
		fuzz_add_header(r, "content-type", "application/grpc");
		if (flags & 2)
			fuzz_add_header(r, "grpc-status", code);
		/* Most Modal answers are one framed message: frame the bytes
		 * unless the input asks for them raw. */
		if (!(flags & 0x80) ? pp_grpc_frame(&r->body, a->p, len)
				    : pp_buf_append(&r->body, a->p, len))
			abort();
	} else {
		fuzz_add_header(r, "content-type", "application/json");
		if (pp_buf_append(&r->body, a->p, len))
			abort();
	}
	a->p += len;
	a->left -= len;
	return true;
}

static int (*op_fn(const struct pp_provider *p, enum pp_op op))(struct pp_run_io *,
								struct pp_error *)
{
	switch (op) {
	case PP_OP_SUBMIT: return p->submit;
	case PP_OP_STATUS: return p->status;
	case PP_OP_CANCEL: return p->cancel;
	case PP_OP_CLEANUP: return p->cleanup;
	}
	return NULL;
}

/* One op until it finishes or the answers run out; false when they did. */
static bool drive(const struct pp_provider *p, enum pp_op op, struct pp_run_io *io,
		  struct answers *a, bool grpc)
{
	int (*fn)(struct pp_run_io *, struct pp_error *) = op_fn(p, op);
	struct pp_http_resp resp;
	struct pp_error err = {0}, resp_err = {0};
	bool have_resp = false;
	if (!fn)
		return true;
	for (int i = 0; i < MAX_STEPS; i++) {
		pp_http_req_free(&io->req);
		memset(&io->req, 0, sizeof(io->req));
		io->resp = have_resp ? &resp : NULL;
		io->resp_err = have_resp ? &resp_err : NULL;
		pp_error_clear(&err);
		int rc = fn(io, &err);
		if (have_resp)
			pp_http_resp_free(&resp);
		have_resp = false;
		io->resp = NULL;
		io->resp_err = NULL;
		if (rc < 0 && !err.msg[0] && !resp_err.msg[0])
			abort(); /* a failure must say what went wrong */
		if (rc < 0 || rc == PP_STEP_DONE)
			return true;
		if (rc == PP_STEP_WAIT)
			continue;
		if (rc != PP_STEP_SEND || !io->req.url)
			abort();
		if (!next_answer(a, grpc, &resp))
			return false;
		have_resp = true;
		pp_error_clear(&resp_err);
		io->resp_rc = pp_http_classify(&io->req, &resp, &resp_err);
	}
	return true;
}

static void init_io(struct pp_run_io *io, size_t which, void **shared)
{
	memset(io, 0, sizeof(*io));
	io->run_id = "6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5";
	io->run_name = "fuzz";
	io->attempt = 1;
	io->idem_key = "pp-6f1c2d3e4a5b4c6d8e9fa0b1c2d3e4f5-1";
	io->job = jobs[which];
	io->endpoint = "http://127.0.0.1:9";
	io->pool_shared = shared;
	io->exit_code = -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 1 << 16)
		return 0;
	size_t which = data[0] % NPOOLS;
	const struct pp_provider *p = providers[which];
	bool grpc = !strcmp(p->name, "modal");
	struct answers a = {data + 1, size - 1};
	struct pp_run_io io, again;
	struct pp_error err = {0};
	void *shared = NULL;
	static const enum pp_op ops[] = {PP_OP_SUBMIT, PP_OP_STATUS, PP_OP_STATUS, PP_OP_CANCEL,
					 PP_OP_CLEANUP};

	init_io(&io, which, &shared);
	if (pp_exec_io_prepare(&io, p, &err))
		setup_failed(p->name, &err);
	bool more = true;
	for (size_t i = 0; more && i < sizeof(ops) / sizeof(ops[0]); i++)
		more = drive(p, ops[i], &io, &a, grpc);
	pp_http_req_free(&io.req);
	if (more && io.infra_id) {
		init_io(&again, which, &shared);
		if (!pp_run_io_set_infra_id(&again, &err, "%s", io.infra_id) &&
		    !pp_exec_io_restore(&again, p, &err)) {
			if (drive(p, PP_OP_STATUS, &again, &a, grpc))
				drive(p, PP_OP_CLEANUP, &again, &a, grpc);
			pp_http_req_free(&again.req);
			pp_exec_io_release(&again, p);
		}
	}
	pp_exec_io_release(&io, p);
	if (shared && p->release_shared)
		p->release_shared(shared);
	return 0;
}
