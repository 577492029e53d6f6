/* Modal backend: each run is a Modal Sandbox (registry image + argv), driven
 * over Modal's gRPC API (lib/grpc.h, hand-encoded protobuf from
 * lib/pb.h). Field numbers follow modal_proto/api.proto; see
 * docs/modal.md for the call sequence and its compatibility risk. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/modal.h"
#include "lib/grpc.h"
#include "lib/intern.h"
#include "lib/log.h"
#include "lib/pb.h"
#include "providers/common.h"
#include "providers/logs.h"
#include "providers/provider.h"

#define SVC		      "modal.client.ModalClient/"
#define RPC_TIMEOUT_MS	      30000L
#define IMAGE_JOIN_TIMEOUT_S  25.0f
#define IMAGE_BUILDER_VERSION "2024.10"
#define DEFAULT_APP_NAME      "prefect-flow-runs"
#define MSG_MAX		      ((size_t)1 << 20)
#define ID_MAX		      128
/* ImageJoinStreaming is a long-poll: the server holds the call open for the
 * timeout we ask for (IMAGE_JOIN_TIMEOUT_S), streaming build entries, then
 * ends it; we ask again from last_entry_id. The SDKs ask for 55 s, but the
 * op driver caps every call at 30 s (pp_exec_policy.call_timeout_ms), so a
 * 55 s long-poll always ended in our own timeout and lost the entries read
 * so far: we ask for 25 s and give the call a deadline past it, within the
 * cap. */
#define IMAGE_JOIN_CALL_MS 28000L

/* api.proto enums */
enum { CREATE_IF_MISSING = 1, EPHEMERAL = 5 };
enum {
	RESULT_UNSPECIFIED = 0,
	RESULT_SUCCESS = 1,
	RESULT_FAILURE = 2,
	RESULT_TERMINATED = 3,
	RESULT_TIMEOUT = 4,
	RESULT_INIT_FAILURE = 5,
	RESULT_INTERNAL_FAILURE = 6,
	RESULT_IDLE_TIMEOUT = 7,
	RESULT_EVICTED = 8,
};

enum modal_step {
	MS_LOOKUP,
	MS_APP,
	MS_IMAGE,
	MS_IMAGE_JOIN,
	MS_SECRET_NAMED,
	MS_SECRET_ENV,
	MS_CREATE,
	MS_ADOPT,
	MS_SUBMITTED,
};

/* Longest image, app, environment, cloud and GPU names a state takes. */
#define IMAGE_MAX	1023
#define APP_NAME_MAX	127
#define ENVIRONMENT_MAX 127
#define CLOUD_MAX	31
#define GPU_TYPE_MAX	63

/* The strings the same for many runs (base URL, names, the image, the ids
 * Modal gave them) are interned (pp_intern_set), NULL when unset (the
 * encoders send NULL as ""). What only SandboxCreate needs (command, env,
 * regions, secrets, tags) is freed once the sandbox exists. */
struct modal_state {
	enum modal_step step;
	const char *base;
	const char *environment;
	const char *app_name;
	char sandbox_name[49];
	const char *image;
	const char *app_id;
	const char *image_id;
	const char *image_entry_id;
	long milli_cpu;
	long memory_mb;
	long timeout_s;
	const char *gpu_type;
	unsigned gpu_count;
	const char *cloud;
	struct pp_json *command; /* array of strings */
	struct pp_json *env;	 /* object of strings */
	struct pp_json *regions; /* array of strings */
	struct pp_json *secrets; /* array of secret names */
	bool terminate_sent;	 /* we asked for SandboxTerminate */
	bool ended;		 /* SandboxWait reported a result: nothing to clean up */
	bool create_sent;	 /* a SandboxCreate went out */
	size_t next_secret;
	struct pp_buf secret_ids; /* Sandbox.secret_ids entries, already encoded */
	/* job_configuration.modal_credentials, when the run brings its own token
	 * (io->run_cred points here: the core signs with it) */
	struct pp_cred *auth;
	/* SandboxCreate's tags: pushpool-sandbox, then the run and store labels,
	 * already encoded (set by prepare) */
	struct pp_buf tags;
	double list_before; /* list: the next SandboxList page's before_timestamp, 0: first */
};

/* ---- helpers ---- */

static int intern_opt(const char **slot, size_t max, const struct pp_json *job, const char *key,
		      const char *def, struct pp_error *err)
{
	const char *v = pp_json_get_string(job, key);
	return pp_intern_set(slot, v && *v ? v : def ? def : "", max, key, err);
}

/* An interned string of the state for an encoder: "" when unset. */
static const char *str(const char *s)
{
	return s ? s : "";
}

/* x-idempotency-key for a creating call: the SDKs send one UUID per logical
 * call, the same on each retry. Ours is derived from the run (key, id,
 * attempt) and the step (and which secret), so a re-sent create after a lost answer carries
 * the key of the first try. Reads and polls carry none, so a server that
 * caches by key can never replay a stale status. */
static int set_idempotency_key(struct pp_run_io *io, const char *rpc)
{
	struct modal_state *st = io->state;
	size_t n = strlen(rpc);
	bool creates =
		!strcmp(rpc, "SandboxCreate") || (n > 11 && !strcmp(rpc + n - 11, "GetOrCreate"));
	if (!creates)
		return 0;
	char seed[512], hex[65], uuid[40];
	snprintf(seed, sizeof(seed), "%s/%d/%s/%d/%zu", io->idem_key ? io->idem_key : "",
		 io->attempt, io->run_id, (int)st->step, st->next_secret);
	pp_sha256_hex(seed, strlen(seed), hex);
	/* UUID version 4 layout, as the SDKs send */
	snprintf(uuid, sizeof(uuid), "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 12,
		 hex + 15, hex + 18);
	return pp_http_req_set_header(&io->req, "x-idempotency-key", uuid);
}

static int send_rpc(struct pp_run_io *io, const char *rpc, const struct pp_buf *msg,
		    struct pp_error *err)
{
	struct modal_state *st = io->state;
	char path[96];
	snprintf(path, sizeof(path), SVC "%s", rpc);
	long deadline = strcmp(rpc, "ImageJoinStreaming") ? RPC_TIMEOUT_MS : IMAGE_JOIN_CALL_MS;
	int rc = pp_grpc_request(&io->req, st->base, path, msg, deadline, err);
	if (rc)
		return rc;
	if (set_idempotency_key(io, rpc))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	/* Each call may share a multiplexed connection (libcurl resends it by
	 * itself when that connection dies unanswered), because a second copy
	 * acts no more than the first: SandboxCreate carries the run's
	 * idempotency key and its deterministic name (a duplicate is the same
	 * sandbox or ALREADY_EXISTS, adopted); AppGetOrCreate and
	 * ImageGetOrCreate get or create by name and definition;
	 * SecretGetOrCreate is by name, or for the env secret carries the
	 * idempotency key (a stray copy would be an ephemeral secret nothing
	 * uses); SandboxTerminate of a stopped sandbox is a no-op;
	 * SandboxGetFromName, SandboxWait, SandboxList and ImageJoinStreaming
	 * only read. */
	io->req.flags |= PP_HTTP_RESENDABLE;
	return PP_STEP_SEND;
}

/* Build a message with fn and send it. */
typedef int (*encode_fn)(struct modal_state *st, struct pp_buf *m);

static int send_encoded(struct pp_run_io *io, const char *rpc, encode_fn fn, struct pp_error *err)
{
	struct pp_buf m;
	pp_buf_init(&m, MSG_MAX);
	int rc = fn(io->state, &m);
	if (rc)
		rc = pp_fail(err, rc, "modal %s: request too large", rpc);
	else
		rc = send_rpc(io, rpc, &m, err);
	pp_buf_free(&m);
	return rc;
}

static int result(struct pp_run_io *io, const char *rpc, struct pp_pb_reader *r,
		  struct pp_error *err)
{
	char what[96];
	const uint8_t *msg;
	size_t len;
	snprintf(what, sizeof(what), "Modal %s", rpc);
	/* Nothing was sent (the auth token fetch failed): keep that error. */
	if (io->resp->status == 0 && io->resp_rc && io->resp_err && io->resp_err->msg[0]) {
		*err = *io->resp_err;
		return pp_error_prefix(err, "%s: ", what);
	}
	int rc = pp_grpc_result(io->resp, what, pp_modal_retry_hint, &msg, &len, NULL, err);
	struct modal_state *st = io->state;
	if (!rc)
		pp_pb_reader_init(r, msg, len);
	else if (rc == PP_EAUTH && st->auth)
		/* gRPC says UNAUTHENTICATED with HTTP 200, which the core does
		 * not take for a rejected token: drop the run's own one here. */
		pp_cred_invalidate(st->auth);
	return rc;
}

/* First string field num of the message in r ("" when absent). */
static int read_id(struct pp_pb_reader *r, uint32_t num, char *out, size_t size,
		   struct pp_error *err)
{
	struct pp_pb_field f;
	int rc;
	out[0] = '\0';
	while ((rc = pp_pb_next(r, &f, err)) == 1)
		if (f.num == num && (rc = pp_pb_field_string(&f, out, size, err)))
			return rc;
	return rc;
}

/* Read string field num of r's message into an interned slot (unset when
 * the field is absent). */
static int read_interned(struct pp_pb_reader *r, uint32_t num, const char **slot,
			 struct pp_error *err)
{
	char id[ID_MAX];
	int rc = read_id(r, num, id, sizeof(id), err);
	return rc || !id[0] ? rc : pp_intern_set(slot, id, ID_MAX - 1, "id", err);
}

struct generic_result {
	bool present;
	int status;
	int exitcode;
	char exception[256];
};

static int read_generic_result(const struct pp_pb_field *outer, struct generic_result *g,
			       struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	int rc;
	memset(g, 0, sizeof(*g));
	g->present = true;
	pp_pb_reader_init(&r, outer->data, outer->len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.num == 1 && f.wire == PP_PB_VARINT)
			g->status = (int)f.u64;
		else if (f.num == 3 && f.wire == PP_PB_VARINT)
			g->exitcode = (int)(int32_t)f.u64;
		else if (f.num == 2 && f.wire == PP_PB_LEN)
			snprintf(g->exception, sizeof(g->exception), "%.*s",
				 (int)(f.len < 255 ? f.len : 255), (const char *)f.data);
	}
	return rc;
}

/* ---- encoders (field numbers from api.proto) ---- */

static int enc_lookup(struct modal_state *st, struct pp_buf *m)
{
	/* SandboxGetFromNameRequest{sandbox_name=1, environment_name=2, app_name=3} */
	return pp_pb_string(m, 1, st->sandbox_name) ?: pp_pb_string(m, 2, str(st->environment)) ?:
		pp_pb_string(m, 3, str(st->app_name));
}

static int enc_app(struct modal_state *st, struct pp_buf *m)
{
	/* AppGetOrCreateRequest{app_name=1, environment_name=2, object_creation_type=3} */
	return pp_pb_string(m, 1, str(st->app_name)) ?: pp_pb_string(m, 2, str(st->environment)) ?:
		pp_pb_varint(m, 3, CREATE_IF_MISSING);
}

static int enc_image(struct modal_state *st, struct pp_buf *m)
{
	/* ImageGetOrCreateRequest{image=2 Image{dockerfile_commands=6}, app_id=4,
	 * builder_version=9} */
	struct pp_buf img, from;
	pp_buf_init(&img, MSG_MAX);
	pp_buf_init(&from, IMAGE_MAX + 9);
	int rc = pp_buf_printf(&from, "FROM %s", str(st->image)) ?:
		pp_pb_string(&img, 6, from.data) ?: pp_pb_message(m, 2, &img) ?:
		pp_pb_string(m, 4, str(st->app_id)) ?:
		pp_pb_string(m, 9, IMAGE_BUILDER_VERSION);
	pp_buf_free(&img);
	pp_buf_free(&from);
	return rc;
}

static int enc_image_join(struct modal_state *st, struct pp_buf *m)
{
	/* ImageJoinStreamingRequest{image_id=1, timeout=2, last_entry_id=3} */
	return pp_pb_string(m, 1, str(st->image_id)) ?: pp_pb_float(m, 2, IMAGE_JOIN_TIMEOUT_S) ?:
		pp_pb_string(m, 3, str(st->image_entry_id));
}

static int enc_secret_named(struct modal_state *st, struct pp_buf *m)
{
	/* SecretGetOrCreateRequest{deployment_name=1, environment_name=3} */
	const struct pp_json *name = pp_json_at(st->secrets, st->next_secret);
	return pp_pb_string(m, 1, pp_json_string(name)) ?: pp_pb_string(m, 3, str(st->environment));
}

static int enc_secret_env(struct modal_state *st, struct pp_buf *m)
{
	/* SecretGetOrCreateRequest{environment_name=3, object_creation_type=4
	 * EPHEMERAL, env_dict=5}: how the SDKs pass a sandbox's env. */
	int rc = pp_pb_string(m, 3, str(st->environment)) ?: pp_pb_varint(m, 4, EPHEMERAL);
	pp_json_foreach (v, st->env)
		if (!rc)
			rc = pp_pb_map_entry(m, 5, v->key, pp_json_string(v));
	return rc;
}

static int enc_create(struct modal_state *st, struct pp_buf *m)
{
	struct pp_buf sb, res, gpu, place, tag;
	pp_buf_init(&sb, MSG_MAX);
	pp_buf_init(&res, 1024);
	pp_buf_init(&gpu, 256);
	pp_buf_init(&place, 64 * 1024);
	pp_buf_init(&tag, 1024);
	int rc = 0;
	/* Sandbox{entrypoint_args=1, image_id=3, secret_ids=4, resources=5,
	 * timeout_secs=7, scheduler_placement=17, cloud_provider_str=26, name=30} */
	pp_json_foreach (a, st->command)
		if (!rc)
			rc = pp_pb_string(&sb, 1, pp_json_string(a));
	rc = rc ?: pp_pb_string(&sb, 3, str(st->image_id)) ?:
		pp_buf_append(&sb, st->secret_ids.data, st->secret_ids.len);
	/* Resources{memory_mb=2, milli_cpu=3, gpu_config=4 GPUConfig{count=2, gpu_type=4}} */
	if (!rc && st->memory_mb > 0)
		rc = pp_pb_varint(&res, 2, (uint64_t)st->memory_mb);
	if (!rc && st->milli_cpu > 0)
		rc = pp_pb_varint(&res, 3, (uint64_t)st->milli_cpu);
	if (!rc && st->gpu_type)
		rc = pp_pb_varint(&gpu, 2, st->gpu_count) ?: pp_pb_string(&gpu, 4, st->gpu_type) ?:
			pp_pb_message(&res, 4, &gpu);
	rc = rc ?: pp_pb_message(&sb, 5, &res);
	if (!rc && st->timeout_s > 0)
		rc = pp_pb_varint(&sb, 7, (uint64_t)st->timeout_s);
	/* SchedulerPlacement{regions=4} */
	pp_json_foreach (r, st->regions)
		if (!rc)
			rc = pp_pb_string(&place, 4, pp_json_string(r));
	if (!rc && place.len)
		rc = pp_pb_message(&sb, 17, &place);
	if (!rc && st->cloud)
		rc = pp_pb_string(&sb, 26, st->cloud);
	rc = rc ?: pp_pb_string(&sb, 30, st->sandbox_name);
	/* SandboxCreateRequest{app_id=1, definition=2, tags=4 SandboxTag{tag_name=1,
	 * tag_value=2}}; environment_name=3 is marked deprecated in api.proto (the
	 * app already names the environment) and modal-go no longer sends it. */
	rc = rc ?: pp_pb_string(m, 1, str(st->app_id)) ?: pp_pb_message(m, 2, &sb) ?:
		pp_pb_string(&tag, 1, "pushpool-sandbox") ?:
		pp_pb_string(&tag, 2, st->sandbox_name) ?: pp_pb_message(m, 4, &tag) ?:
		pp_buf_append(m, st->tags.data, st->tags.len);
	pp_buf_free(&sb);
	pp_buf_free(&res);
	pp_buf_free(&gpu);
	pp_buf_free(&place);
	pp_buf_free(&tag);
	return rc;
}

/* ---- prepare ---- */

static int parse_gpu(struct modal_state *st, const char *gpu, struct pp_error *err)
{
	/* "A100", "A100:2", "h100:8" */
	const char *colon = strchr(gpu, ':');
	size_t n = colon ? (size_t)(colon - gpu) : strlen(gpu);
	st->gpu_count = 1;
	if (colon) {
		char *end;
		long c = strtol(colon + 1, &end, 10);
		if (*end || c < 1 || c > 64)
			return pp_fail(err, PP_EINVALID, "modal: gpu \"%s\": count must be 1-64",
				       gpu);
		st->gpu_count = (unsigned)c;
	}
	if (!n || n > GPU_TYPE_MAX)
		return pp_fail(err, PP_EINVALID, "modal: gpu \"%s\": bad GPU type", gpu);
	char type[GPU_TYPE_MAX + 1];
	for (size_t i = 0; i < n; i++)
		type[i] = (char)(gpu[i] >= 'a' && gpu[i] <= 'z' ? gpu[i] - 32 : gpu[i]);
	type[n] = '\0';
	return pp_intern_set(&st->gpu_type, type, GPU_TYPE_MAX, "gpu", err);
}

static int string_list(const struct pp_json *v, const char *what, struct pp_json **out,
		       struct pp_error *err)
{
	*out = pp_json_new(PP_JSON_ARRAY);
	if (!*out)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (!v || v->type == PP_JSON_NULL)
		return 0;
	if (v->type == PP_JSON_STRING) {
		if (!*v->str)
			return 0;
		return pp_json_append(*out, pp_json_new_string(v->str))
			       ? pp_fail(err, PP_ENOMEM, "out of memory")
			       : 0;
	}
	if (v->type != PP_JSON_ARRAY)
		return pp_fail(err, PP_EINVALID, "modal: %s must be a string or a list of strings",
			       what);
	pp_json_foreach (e, v) {
		if (e->type != PP_JSON_STRING || !*e->str)
			return pp_fail(err, PP_EINVALID,
				       "modal: %s: every entry must be a non-empty string", what);
		if (pp_json_append(*out, pp_json_new_string(e->str)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	return 0;
}

static int prepare_command(struct modal_state *st, const struct pp_json *cmd, struct pp_error *err)
{
	if (cmd && cmd->type == PP_JSON_STRING && *cmd->str)
		return pp_shell_split(cmd->str, &st->command, err);
	return string_list(cmd, "command", &st->command, err);
}

static int prepare_env(struct modal_state *st, const struct pp_json *env, struct pp_error *err)
{
	st->env = pp_json_new(PP_JSON_OBJECT);
	if (!st->env)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (!env || env->type == PP_JSON_NULL)
		return 0;
	if (env->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "modal: env must be an object");
	pp_json_foreach (v, env) {
		if (v->type == PP_JSON_NULL)
			continue;
		char *text = v->type == PP_JSON_STRING ? strdup(v->str) : pp_json_to_string(v, 0);
		int rc = text ? pp_json_set_string(st->env, v->key, text) : PP_ENOMEM;
		free(text);
		if (rc)
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	return 0;
}

static int number_field(const struct pp_json *job, const char *key, double scale, long max,
			long *out, struct pp_error *err)
{
	const struct pp_json *v = pp_json_get(job, key);
	double d;
	*out = 0;
	if (!v || v->type == PP_JSON_NULL)
		return 0;
	if (v->type == PP_JSON_STRING && !*v->str)
		return 0;
	if (v->type == PP_JSON_STRING) {
		char *end;
		d = strtod(v->str, &end);
		if (*end)
			return pp_fail(err, PP_EINVALID, "modal: %s \"%s\" is not a number", key,
				       v->str);
	} else if (v->type == PP_JSON_NUMBER) {
		d = v->num;
	} else {
		return pp_fail(err, PP_EINVALID, "modal: %s must be a number", key);
	}
	d *= scale;
	if (!(d >= 0) || d > (double)max)
		return pp_fail(err, PP_EINVALID, "modal: %s out of range", key);
	*out = lround(d);
	return 0;
}

static int base_url(struct pp_run_io *io, struct modal_state *st, struct pp_error *err)
{
	const char *env = getenv("MODAL_SERVER_URL");
	return pp_base_url_intern(&st->base, io->endpoint,
				  env && *env ? env : PP_MODAL_DEFAULT_SERVER, err);
}

/* A token pair in the job overrides the pool's credentials for this run. */
static int prepare_job_auth(struct pp_run_io *io, const struct pp_json *mc, struct pp_error *err)
{
	struct modal_state *st = io->state;
	if (st->auth) { /* restore after prepare: made already */
		io->run_cred = st->auth;
		return 0;
	}
	if (!mc || mc->type == PP_JSON_NULL || (mc->type == PP_JSON_STRING && !*mc->str))
		return 0;
	const char *id = pp_json_get_string(mc, "token_id");
	const char *secret = pp_json_get_string(mc, "token_secret");
	if (mc->type != PP_JSON_OBJECT || !id || !*id || !secret || !*secret)
		return pp_fail(err, PP_EINVALID,
			       "modal: modal_credentials must be an object with "
			       "token_id and token_secret");
	struct pp_cred_conf conf;
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.name, sizeof(conf.name), "modal_credentials");
	conf.type = (char *)"modal";
	conf.source = (char *)"token";
	conf.token_id = (char *)id;
	conf.token_secret = (char *)secret;
	int rc = pp_cred_new(&conf, &st->auth, err);
	if (!rc)
		io->run_cred = st->auth;
	return rc;
}

/* SandboxCreateRequest.tags=4 SandboxTag{tag_name=1, tag_value=2} for
 * pushpool's run and store labels, which the sweeper lists by. */
static int encode_labels(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	const char *labels[][2] = {{PP_LABEL_RUN, io->run_id}, {PP_LABEL_STORE, io->store_id}};
	int rc = 0;
	for (size_t i = 0; i < 2 && !rc; i++) {
		if (!labels[i][1] || !*labels[i][1])
			continue;
		struct pp_buf tag;
		pp_buf_init(&tag, 1024);
		rc = pp_pb_string(&tag, 1, labels[i][0]) ?: pp_pb_string(&tag, 2, labels[i][1]) ?:
			pp_pb_message(&st->tags, 4, &tag);
		pp_buf_free(&tag);
	}
	return rc ? pp_fail(err, PP_EINVALID, "modal: run id or store id too long for a tag") : 0;
}

static int modal_prepare(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	const struct pp_json *job = io->job;
	int rc;
	if (!job || job->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "modal: rendered job configuration is missing");
	pp_buf_init(&st->secret_ids, 64 * 1024);
	pp_buf_init(&st->tags, 4096);
	const char *image = pp_json_get_string(job, "image");
	if (!image || !*image)
		return pp_fail(err, PP_EINVALID, "modal: job_configuration.image is required");
	const char *gpu = pp_json_get_string(job, "gpu");
	const char *cloud = pp_json_get_string(job, "cloud");
	if ((rc = pp_intern_set(&st->image, image, IMAGE_MAX, "image", err)) ||
	    (rc = intern_opt(&st->app_name, APP_NAME_MAX, job, "app_name", DEFAULT_APP_NAME,
			     err)) ||
	    (rc = intern_opt(&st->environment, ENVIRONMENT_MAX, job, "modal_environment",
			     getenv("MODAL_ENVIRONMENT"), err)) ||
	    (rc = cloud && *cloud && strcmp(cloud, "auto")
			  ? pp_intern_set(&st->cloud, cloud, CLOUD_MAX, "cloud", err)
			  : 0) ||
	    (rc = number_field(job, "cpu", 1000.0, 1000000, &st->milli_cpu, err)) ||
	    (rc = number_field(job, "memory", 1.0, 1L << 24, &st->memory_mb, err)) ||
	    (rc = number_field(job, "timeout", 1.0, 86400, &st->timeout_s, err)) ||
	    (rc = gpu && *gpu ? parse_gpu(st, gpu, err) : 0) ||
	    (rc = prepare_command(st, pp_json_get(job, "command"), err)) ||
	    (rc = prepare_env(st, pp_json_get(job, "env"), err)) ||
	    (rc = string_list(pp_json_get(job, "region"), "region", &st->regions, err)) ||
	    (rc = string_list(pp_json_get(job, "secrets"), "secrets", &st->secrets, err)) ||
	    (rc = pp_derive_name(st->sandbox_name, sizeof(st->sandbox_name), io->run_id,
				 io->attempt, err)) ||
	    (rc = base_url(io, st, err)))
		return rc;
	/* No timeout of the job's own: the run's max_runtime is the sandbox's
	 * timeout too, so Modal ends it even if pushpool is not watching. */
	if (!st->timeout_s && io->max_runtime_s > 0)
		st->timeout_s = io->max_runtime_s < 86400 ? (long)ceil(io->max_runtime_s) : 86400;
	if ((rc = encode_labels(io, err)))
		return rc;
	rc = prepare_job_auth(io, pp_json_get(job, "modal_credentials"), err);
	if (rc)
		return rc;
	st->step = MS_LOOKUP;
	return 0;
}

/* What only SandboxCreate reads. */
static void free_create_inputs(struct modal_state *st)
{
	pp_json_free(st->command);
	pp_json_free(st->env);
	pp_json_free(st->regions);
	pp_json_free(st->secrets);
	st->command = st->env = st->regions = st->secrets = NULL;
	pp_buf_free(&st->secret_ids);
	pp_buf_free(&st->tags);
}

static int modal_restore(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	/* The loop restores a taken-over run on the state it prepared: the
	 * sandbox exists, so what only its creation reads goes. */
	free_create_inputs(st);
	pp_buf_init(&st->secret_ids, 64 * 1024);
	pp_buf_init(&st->tags, 4096);
	if (!io->infra_id || strlen(io->infra_id) >= ID_MAX)
		return pp_fail(err, PP_EINVALID, "modal: infra id '%s' is not a sandbox id",
			       io->infra_id ? io->infra_id : "");
	st->step = MS_SUBMITTED;
	int rc = base_url(io, st, err);
	if (!rc && io->job)
		rc = prepare_job_auth(io, pp_json_get(io->job, "modal_credentials"), err);
	return rc;
}

/* ---- submit ---- */

static int next_after_image(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	if (st->next_secret < st->secrets->count) {
		st->step = MS_SECRET_NAMED;
		return send_encoded(io, "SecretGetOrCreate", enc_secret_named, err);
	}
	if (st->env->count) {
		st->step = MS_SECRET_ENV;
		return send_encoded(io, "SecretGetOrCreate", enc_secret_env, err);
	}
	st->step = MS_CREATE;
	return send_encoded(io, "SandboxCreate", enc_create, err);
}

/* ImageGetOrCreate / ImageJoinStreaming answers carry a GenericResult
 * (field 2 / field 1); without one the build is still running. */
static int on_image_result(struct pp_run_io *io, const struct generic_result *g,
			   struct pp_error *err)
{
	struct modal_state *st = io->state;
	if (!g->present || g->status == RESULT_UNSPECIFIED) {
		st->step = MS_IMAGE_JOIN;
		return send_encoded(io, "ImageJoinStreaming", enc_image_join, err);
	}
	if (g->status != RESULT_SUCCESS)
		return pp_fail(err, PP_EINVALID,
			       "modal: image \"%s\" failed to build (status %d)%s%s", st->image,
			       g->status, g->exception[0] ? ": " : "", g->exception);
	return next_after_image(io, err);
}

static int on_image(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	struct pp_pb_reader r;
	struct pp_pb_field f;
	struct generic_result g = {0};
	char id[ID_MAX] = "";
	int rc = result(io, "ImageGetOrCreate", &r, err);
	if (rc)
		return rc;
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.num == 1 && (rc = pp_pb_field_string(&f, id, ID_MAX, err)))
			return rc;
		if (f.num == 2 && f.wire == PP_PB_LEN && (rc = read_generic_result(&f, &g, err)))
			return rc;
	}
	if (rc)
		return rc;
	if (!id[0])
		return pp_fail(err, PP_EINVALID,
			       "Modal ImageGetOrCreate: no image_id in the answer");
	if ((rc = pp_intern_set(&st->image_id, id, ID_MAX - 1, "image_id", err)))
		return rc;
	return on_image_result(io, &g, err);
}

/* A server stream: walk every frame, keep the last entry id for resuming. */
static int on_image_join(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	const uint8_t *msg;
	size_t len;
	struct pp_pb_reader first;
	/* A long-poll that saw no new entry ends with OK and no message: ask
	 * again from the same entry. */
	const char *gs = pp_http_resp_header(io->resp, "grpc-status");
	if (io->resp->status == 200 && gs && !strcmp(gs, "0") && io->resp->body.len == 0)
		return send_encoded(io, "ImageJoinStreaming", enc_image_join, err);
	int rc = result(io, "ImageJoinStreaming", &first, err);
	if (rc)
		return rc;
	struct generic_result g = {0};
	char entry[ID_MAX] = ""; /* the last entry id seen */
	const char *p = io->resp->body.data;
	size_t left = io->resp->body.len, used;
	while (left) {
		rc = pp_grpc_unframe(p, left, &msg, &len, &used, err);
		if (rc)
			return pp_error_prefix(err, "Modal ImageJoinStreaming: ");
		struct pp_pb_reader r;
		struct pp_pb_field f;
		pp_pb_reader_init(&r, msg, len);
		while ((rc = pp_pb_next(&r, &f, err)) == 1) {
			if (f.num == 1 && f.wire == PP_PB_LEN &&
			    (rc = read_generic_result(&f, &g, err)))
				return rc;
			if (f.num == 3 && (rc = pp_pb_field_string(&f, entry, ID_MAX, err)))
				return rc;
		}
		if (rc)
			return rc;
		p += used;
		left -= used;
	}
	if (entry[0] &&
	    (rc = pp_intern_set(&st->image_entry_id, entry, ID_MAX - 1, "entry id", err)))
		return rc;
	return on_image_result(io, &g, err);
}

static int on_secret(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	struct pp_pb_reader r;
	char id[ID_MAX];
	int rc = result(io, "SecretGetOrCreate", &r, err) ?: read_id(&r, 1, id, sizeof(id), err);
	if (rc)
		return rc;
	if (!id[0])
		return pp_fail(err, PP_EINVALID, "Modal SecretGetOrCreate: no secret_id");
	if (pp_pb_string(&st->secret_ids, 4, id))
		return pp_fail(err, PP_ENOMEM, "modal: too many secrets");
	if (st->step == MS_SECRET_NAMED) {
		st->next_secret++;
	} else {
		st->step = MS_CREATE;
		return send_encoded(io, "SandboxCreate", enc_create, err);
	}
	return next_after_image(io, err);
}

/* sandbox_id (field 1) into io->infra_id, left NULL when the answer has none. */
static int read_sandbox_id(struct pp_run_io *io, struct pp_pb_reader *r, struct pp_error *err)
{
	char id[ID_MAX];
	int rc = read_id(r, 1, id, sizeof(id), err);
	return rc || !id[0] ? rc : pp_run_io_set_infra_id(io, err, "%s", id);
}

static int on_sandbox_id(struct pp_run_io *io, const char *rpc, struct pp_error *err)
{
	struct modal_state *st = io->state;
	struct pp_pb_reader r;
	int rc = result(io, rpc, &r, err) ?: read_sandbox_id(io, &r, err);
	if (rc)
		return rc;
	if (!io->infra_id)
		return pp_fail(err, PP_EINVALID, "Modal %s: no sandbox_id in the answer", rpc);
	st->step = MS_SUBMITTED;
	free_create_inputs(st);
	return PP_STEP_DONE;
}

static int modal_submit(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	struct pp_pb_reader r;
	int rc;

	switch (st->step) {
	case MS_LOOKUP:
	case MS_ADOPT:
		if (!io->resp)
			return send_encoded(io, "SandboxGetFromName", enc_lookup, err);
		rc = on_sandbox_id(io, "SandboxGetFromName", err);
		if (rc == PP_STEP_DONE)
			pp_info("modal run %s: adopted sandbox %s (%s)", io->run_id, io->infra_id,
				st->sandbox_name);
		if (rc != PP_ENOTFOUND)
			return rc;
		if (st->step == MS_ADOPT) /* it exited between our create and lookup */
			return pp_fail(err, PP_ECONFLICT,
				       "modal: sandbox %s exists (ALREADY_EXISTS) but "
				       "SandboxGetFromName cannot find it",
				       st->sandbox_name);
		pp_error_clear(err);
		st->step = MS_APP;
		return send_encoded(io, "AppGetOrCreate", enc_app, err);
	case MS_APP:
		if (!io->resp)
			return send_encoded(io, "AppGetOrCreate", enc_app, err);
		rc = result(io, "AppGetOrCreate", &r, err)
			     ?: read_interned(&r, 1, &st->app_id, err);
		if (rc)
			return rc;
		if (!st->app_id)
			return pp_fail(err, PP_EINVALID, "Modal AppGetOrCreate: no app_id");
		st->step = MS_IMAGE;
		return send_encoded(io, "ImageGetOrCreate", enc_image, err);
	case MS_IMAGE:
		if (!io->resp)
			return send_encoded(io, "ImageGetOrCreate", enc_image, err);
		return on_image(io, err);
	case MS_IMAGE_JOIN:
		if (!io->resp)
			return send_encoded(io, "ImageJoinStreaming", enc_image_join, err);
		return on_image_join(io, err);
	case MS_SECRET_NAMED:
		if (!io->resp)
			return send_encoded(io, "SecretGetOrCreate", enc_secret_named, err);
		return on_secret(io, err);
	case MS_SECRET_ENV:
		if (!io->resp)
			return send_encoded(io, "SecretGetOrCreate", enc_secret_env, err);
		return on_secret(io, err);
	case MS_CREATE:
		st->create_sent = true;
		if (!io->resp)
			return send_encoded(io, "SandboxCreate", enc_create, err);
		rc = on_sandbox_id(io, "SandboxCreate", err);
		if (rc != PP_ECONFLICT)
			return rc;
		/* Our deterministic name is running: an earlier try created it. */
		pp_error_clear(err);
		st->step = MS_ADOPT;
		return send_encoded(io, "SandboxGetFromName", enc_lookup, err);
	case MS_SUBMITTED: break;
	}
	return PP_STEP_DONE;
}

/* ---- status, cancel ---- */

static int enc_sandbox_id(struct pp_buf *m, const char *id, bool wait)
{
	/* SandboxWaitRequest{sandbox_id=1, timeout=2}; SandboxTerminateRequest{sandbox_id=1} */
	int rc = pp_pb_string(m, 1, id);
	return rc ?: wait ? pp_pb_float(m, 2, 0.0f) : 0;
}

static int send_for_sandbox(struct pp_run_io *io, const char *rpc, bool wait, struct pp_error *err)
{
	struct pp_buf m;
	pp_buf_init(&m, 1024);
	int rc = enc_sandbox_id(&m, io->infra_id, wait);
	rc = rc ? pp_fail(err, rc, "modal %s: cannot encode", rpc) : send_rpc(io, rpc, &m, err);
	pp_buf_free(&m);
	return rc;
}

/* libmodal's return codes: TIMEOUT -> 124, TERMINATED -> 137. */
static void map_result(struct pp_run_io *io, const struct generic_result *g)
{
	const struct modal_state *st = io->state;
	const char *exc = g->exception;
	io->start_failure = PP_START_OK;
	switch (g->status) {
	case RESULT_SUCCESS:
		io->state_out = g->exitcode ? PP_RUN_FAILED : PP_RUN_SUCCEEDED;
		io->exit_code = g->exitcode;
		break;
	case RESULT_FAILURE:
		io->state_out = PP_RUN_FAILED;
		io->exit_code = g->exitcode;
		pp_set_message(io, "sandbox exited with code %d%s%s", g->exitcode, *exc ? ": " : "",
			       exc);
		break;
	case RESULT_TERMINATED:
		io->exit_code = 137;
		if (st->terminate_sent) {
			io->state_out = PP_RUN_CANCELLED;
			pp_set_message(io, "sandbox was terminated");
			break;
		}
		/* Not by us: Modal (a worker lost, maintenance) or another client
		 * stopped it; the flow did not finish and nobody here cancelled. */
		io->state_out = PP_RUN_CRASHED;
		pp_set_message(io, "sandbox was terminated, not by pushpool%s%s", *exc ? ": " : "",
			       exc);
		break;
	case RESULT_INIT_FAILURE:
		/* The container did not set up (the proto's example: a mount
		 * whose credentials are wrong); the command never ran. */
		io->state_out = PP_RUN_CRASHED;
		io->start_failure = PP_START_RESOURCE_INIT;
		pp_set_message(io, "sandbox failed to initialize (status %d)%s%s", g->status,
			       *exc ? ": " : "", exc);
		break;
	case RESULT_EVICTED:
		/* The worker took the container away (memory pressure): like a
		 * Spot interruption, the infrastructure's doing, not the flow's. */
		io->state_out = PP_RUN_CRASHED;
		io->start_failure = PP_START_SPOT_INTERRUPTION;
		pp_set_message(io, "sandbox was evicted (status %d)%s%s", g->status,
			       *exc ? ": " : "", exc);
		break;
	case RESULT_TIMEOUT:
	case RESULT_IDLE_TIMEOUT:
		io->state_out = PP_RUN_FAILED;
		io->exit_code = 124;
		pp_set_message(io, "sandbox hit its timeout");
		break;
	default:
		/* INTERNAL_FAILURE, or a status newer than this code: Modal says
		 * the sandbox could not run, without a reason of the flow's. */
		io->state_out = PP_RUN_CRASHED;
		io->start_failure = PP_START_OTHER;
		pp_set_message(io, "sandbox failed to run (status %d)%s%s", g->status,
			       *exc ? ": " : "", exc);
		break;
	}
}

static int modal_status(struct pp_run_io *io, struct pp_error *err)
{
	if (!io->infra_id)
		return pp_fail(err, PP_EINVALID, "modal status: run %s has no sandbox", io->run_id);
	if (!io->resp)
		return send_for_sandbox(io, "SandboxWait", true, err);
	struct pp_pb_reader r;
	struct pp_pb_field f;
	struct generic_result g = {0};
	int rc = result(io, "SandboxWait", &r, err);
	if (rc)
		return rc;
	while ((rc = pp_pb_next(&r, &f, err)) == 1)
		if (f.num == 1 && f.wire == PP_PB_LEN && (rc = read_generic_result(&f, &g, err)))
			return rc;
	if (rc)
		return rc;
	io->exit_code = -1;
	pp_clear_message(io);
	if (!g.present || g.status == RESULT_UNSPECIFIED) {
		io->state_out = PP_RUN_RUNNING;
	} else {
		map_result(io, &g);
		((struct modal_state *)io->state)->ended = true;
	}
	return PP_STEP_DONE;
}

static int modal_cancel(struct pp_run_io *io, struct pp_error *err)
{
	if (!io->infra_id)
		return PP_STEP_DONE;
	struct modal_state *st = io->state;
	if (!io->resp) {
		st->terminate_sent = true;
		return send_for_sandbox(io, "SandboxTerminate", false, err);
	}
	struct pp_pb_reader r;
	int rc = result(io, "SandboxTerminate", &r, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		return PP_STEP_DONE;
	}
	return rc ? rc : PP_STEP_DONE;
}

/* A run that ended without a result from SandboxWait (a failed submission,
 * a sandbox the status call lost, a timeout) may leave its sandbox running:
 * terminate it, found by id, else by its name when a create went out. */
static int modal_cleanup(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	struct pp_pb_reader r;
	int rc;
	if (st->ended || st->terminate_sent)
		return PP_STEP_DONE;
	if (!io->infra_id) {
		if (!st->create_sent)
			return PP_STEP_DONE;
		if (!io->resp)
			return send_encoded(io, "SandboxGetFromName", enc_lookup, err);
		rc = result(io, "SandboxGetFromName", &r, err) ?: read_sandbox_id(io, &r, err);
		if (rc == PP_ENOTFOUND) {
			pp_error_clear(err);
			return PP_STEP_DONE;
		}
		if (rc)
			return rc;
		if (!io->infra_id)
			return PP_STEP_DONE;
		return send_for_sandbox(io, "SandboxTerminate", false, err);
	}
	if (!io->resp)
		return send_for_sandbox(io, "SandboxTerminate", false, err);
	rc = result(io, "SandboxTerminate", &r, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		return PP_STEP_DONE;
	}
	return rc ? rc : PP_STEP_DONE;
}

/* ---- the sweeper's list and remove ---- */

static int enc_list(struct pp_run_io *io, struct pp_buf *m)
{
	struct modal_state *st = io->state;
	/* SandboxListRequest{before_timestamp=2, environment_name=3, tags=5}
	 * (include_finished=4 left false): running sandboxes of the
	 * environment carrying at least our store's tag, newest first, one page
	 * before before_timestamp (as the SDKs page). */
	struct pp_buf tag;
	pp_buf_init(&tag, 1024);
	int rc = (st->list_before > 0 ? pp_pb_double(m, 2, st->list_before) : 0) ?:
		pp_pb_string(m, 3, str(st->environment)) ?:
		pp_pb_string(&tag, 1, PP_LABEL_STORE) ?: pp_pb_string(&tag, 2, io->store_id) ?:
		pp_pb_message(m, 5, &tag);
	pp_buf_free(&tag);
	return rc;
}

static int send_list(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_buf m;
	pp_buf_init(&m, 4096);
	int rc = enc_list(io, &m);
	rc = rc ? pp_fail(err, rc, "modal SandboxList: request too large")
		: send_rpc(io, "SandboxList", &m, err);
	pp_buf_free(&m);
	return rc;
}

/* Our sandbox names are pp-<run id's 32 hex digits>-<attempt>
 * (pp_derive_name): the run id back, for a listing without tags. */
static bool run_id_from_name(const char *name, char out[40])
{
	size_t n = strlen(name);
	if (n < 36 || strncmp(name, "pp-", 3) || name[35] != '-')
		return false;
	for (int i = 3; i < 35; i++)
		if (!strchr("0123456789abcdef", name[i]))
			return false;
	snprintf(out, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", name + 3, name + 11, name + 15, name + 19,
		 name + 23);
	return true;
}

struct listed_sandbox {
	char id[ID_MAX];
	char name[128];
	char run[64];
	char store[64];
	double created_at;
};

static int read_sandbox_tag(const struct pp_pb_field *outer, struct listed_sandbox *sb,
			    struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	char name[64] = "", value[64] = "";
	int rc;
	pp_pb_reader_init(&r, outer->data, outer->len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		/* A value too long for ours is not ours: skipped, not an error. */
		if (f.wire != PP_PB_LEN || f.len >= sizeof(value))
			continue;
		if (f.num == 1 && (rc = pp_pb_field_string(&f, name, sizeof(name), err)))
			return rc;
		if (f.num == 2 && (rc = pp_pb_field_string(&f, value, sizeof(value), err)))
			return rc;
	}
	if (!strcmp(name, PP_LABEL_RUN))
		memcpy(sb->run, value, sizeof(sb->run));
	else if (!strcmp(name, PP_LABEL_STORE))
		memcpy(sb->store, value, sizeof(sb->store));
	return rc;
}

/* SandboxInfo{id=1, created_at=3, tags=6, name=7} */
static int read_sandbox_info(const struct pp_pb_field *outer, struct listed_sandbox *sb,
			     struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	int rc;
	memset(sb, 0, sizeof(*sb));
	pp_pb_reader_init(&r, outer->data, outer->len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.num == 1 && (rc = pp_pb_field_string(&f, sb->id, sizeof(sb->id), err)))
			return rc;
		if (f.num == 3 && f.wire == PP_PB_I64)
			memcpy(&sb->created_at, &f.u64, sizeof(sb->created_at));
		if (f.num == 6 && f.wire == PP_PB_LEN && (rc = read_sandbox_tag(&f, sb, err)))
			return rc;
		if (f.num == 7 && f.wire == PP_PB_LEN && f.len < sizeof(sb->name) &&
		    (rc = pp_pb_field_string(&f, sb->name, sizeof(sb->name), err)))
			return rc;
	}
	return rc;
}

/* Each page's sandboxes, then the page before the oldest one seen, until a
 * page is empty. The server filtered by our store's tag, so a sandbox whose
 * listing carries no tags (SandboxInfo.tags is marked "not yet exposed" in
 * api.proto) is ours, its run read from its name. */
static int modal_list(struct pp_run_io *io, struct pp_error *err)
{
	struct modal_state *st = io->state;
	if (!io->store_id || !*io->store_id)
		return PP_STEP_DONE; /* no store, nothing of ours to find */
	if (!io->resp)
		return send_list(io, err);
	struct pp_pb_reader r;
	struct pp_pb_field f;
	int rc = result(io, "SandboxList", &r, err);
	if (rc)
		return rc;
	double oldest = 0;
	size_t n = 0;
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		struct listed_sandbox sb;
		if (f.num != 1 || f.wire != PP_PB_LEN)
			continue;
		if ((rc = read_sandbox_info(&f, &sb, err)))
			break;
		n++;
		if (oldest == 0 || sb.created_at < oldest)
			oldest = sb.created_at;
		if (!sb.run[0] && !run_id_from_name(sb.name, sb.run))
			continue;
		if (sb.id[0] &&
		    (rc = pp_remote_list_add(
			     io->listed, sb.id, sb.run, sb.store[0] ? sb.store : io->store_id,
			     sb.created_at > 0 ? (long long)(sb.created_at * 1000) : 0, err)))
			break;
	}
	if (rc)
		return pp_error_prefix(err, "modal SandboxList: ");
	/* A page whose oldest sandbox is not older than the last page's would
	 * repeat itself: the listing ends there. */
	if (!n || !(oldest > 0) || (st->list_before > 0 && oldest >= st->list_before))
		return PP_STEP_DONE;
	st->list_before = oldest;
	return send_list(io, err);
}

/* SandboxTerminate on the listed sandbox; one already gone is removed. */
static int modal_remove(struct pp_run_io *io, struct pp_error *err)
{
	if (!io->resp) {
		if (!io->infra_id || strlen(io->infra_id) >= ID_MAX)
			return pp_fail(err, PP_EINVALID, "modal: '%s' is not a sandbox id",
				       io->infra_id ? io->infra_id : "");
		return send_for_sandbox(io, "SandboxTerminate", false, err);
	}
	struct pp_pb_reader r;
	int rc = result(io, "SandboxTerminate", &r, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		return PP_STEP_DONE;
	}
	return rc ? rc : PP_STEP_DONE;
}

static void modal_release(void *state)
{
	struct modal_state *st = state;
	free_create_inputs(st);
	const char **interned[] = {&st->base,		&st->environment, &st->app_name,
				   &st->image,		&st->app_id,	  &st->image_id,
				   &st->image_entry_id, &st->gpu_type,	  &st->cloud};
	for (size_t i = 0; i < sizeof(interned) / sizeof(*interned); i++) {
		pp_intern_drop(*interned[i]);
		*interned[i] = NULL;
	}
	pp_cred_free(st->auth);
	st->auth = NULL;
}

static const char *const modal_pool_types[] = {"modal:push", NULL};

const struct pp_provider pp_provider_modal = {
	.abi = PP_PROVIDER_ABI,
	.name = "modal",
	.pool_types = modal_pool_types,
	.cred_type = "modal",
	.state_size = sizeof(struct modal_state),
	.prepare = modal_prepare,
	.restore = modal_restore,
	.submit = modal_submit,
	.status = modal_status,
	.cancel = modal_cancel,
	.cleanup = modal_cleanup,
	.list = modal_list,
	.remove = modal_remove,
	.release = modal_release,
	.logs = pp_modal_logs,
};
