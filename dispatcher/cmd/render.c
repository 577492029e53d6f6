/* `pushpool render` and `pushpool template default`: show the job a run
 * would submit, and the built-in base job templates. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "render/render.h"
#include "dispatcher/op_driver.h"
#include "dispatcher/dry_run.h"
#include "dispatcher/pool.h"
#include "providers/provider.h"

#define VARS_STDIN_MAX	 ((size_t)1 << 20)
#define REQUEST_DUMP_MAX ((size_t)4 << 20)

/* Stand-ins for the run values when rendering without a real run, fixed so
 * that the output is reproducible. */
#define PREVIEW_RUN_ID	 "00000000-0000-4000-8000-000000000000"
#define PREVIEW_RUN_NAME "render-preview"

/* Where `pushpool render` takes its template from: a configured pool (-p),
 * a pool type's default (--type), or a template file (--template, with an
 * optional pool type). */
struct render_source {
	const char *config_path; /* for pool_name; NULL: pp_cmd_config_path's default */
	const char *pool_name;
	const char *pool_type;
	const char *template_path;
	const struct pp_json *run_vars;
	const struct pp_run_ctx *ctx;
	bool requests; /* --request: the pool's credentials are needed */
};

/* -p: the pool opened as serve opens it (without credentials unless the
 * requests are shown), rendered as serve renders its runs. *pool is the
 * caller's; *config_error says a failure came before the pool's type was
 * known. */
static int render_pool(const struct render_source *src, struct pp_config *cfg,
		       struct pp_pool **pool, struct pp_json **out, bool *config_error,
		       struct pp_error *err)
{
	const char *path = pp_cmd_config_path(src->config_path);
	*config_error = true;
	int rc = pp_config_load(cfg, path, err);
	if (rc)
		return rc;
	const struct pp_pool_conf *pc = pp_config_pool(cfg, src->pool_name);
	if (!pc)
		return pp_fail(err, PP_EINVALID, "%s: no [pool \"%s\"] section", path,
			       src->pool_name);
	*config_error = !pp_pool_type_canonical(pc->type);
	rc = pp_pool_open(cfg, pc, src->requests ? 0 : PP_POOL_NO_CRED, pool, err);
	if (!rc)
		rc = pp_pool_render(*pool, NULL, 0, NULL, src->run_vars, src->ctx, out, err);
	return rc;
}

/* --type or --template: the template alone, without a configuration. */
static int render_template(const struct render_source *src, struct pp_json **out,
			   struct pp_error *err)
{
	struct pp_json *tmpl = NULL;
	int rc = 0;
	if (src->template_path) {
		if (src->pool_type && !pp_pool_type_canonical(src->pool_type))
			rc = pp_fail(err, PP_EINVALID, "unknown pool type \"%s\"", src->pool_type);
		if (!rc)
			rc = pp_template_load(src->template_path, &tmpl, err);
	} else {
		rc = pp_template_default(pp_pool_type_canonical(src->pool_type), &tmpl, err);
	}
	if (!rc)
		rc = pp_render_job(tmpl, NULL, NULL, src->run_vars, src->ctx, out, err);
	pp_json_free(tmpl);
	return rc;
}

/* Pretty JSON on stdout with every registered secret replaced. */
static int print_json(const struct pp_json *j)
{
	char *text = pp_json_to_string(j, PP_JSON_PRETTY);
	if (!text) {
		fprintf(stderr, "pushpool: out of memory\n");
		return PP_EXIT_SOFTWARE;
	}
	pp_redact(text);
	int bad = printf("%s\n", text) < 0 || fflush(stdout) != 0;
	free(text);
	return bad ? PP_EXIT_IOERR : PP_EXIT_OK;
}

static int fail_exit(const char *cmd, const struct pp_error *err)
{
	char msg[PP_ERRMSG_MAX];
	snprintf(msg, sizeof(msg), "%s", err->msg);
	pp_redact(msg);
	fprintf(stderr, "pushpool %s: %s\n", cmd, msg);
	return pp_exit_status(err->code);
}

static void template_usage(FILE *f)
{
	char types[256], aliases[256];
	pp_pool_types_text(false, " ", " ", types, sizeof(types));
	pp_pool_types_text(true, ", ", " and ", aliases, sizeof(aliases));
	fprintf(f,
		"usage: pushpool template default --type TYPE\n"
		"Print the built-in base job template of a push pool type.\n"
		"types: %s\n(%s are accepted as aliases)\n",
		types, aliases);
}

int pp_cmd_template(int argc, char **argv)
{
	static const struct option opts[] = {
		{"type", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		template_usage(stdout);
		return PP_EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "default")) {
		fprintf(stderr, "pushpool template: expected the subcommand \"default\"\n");
		template_usage(stderr);
		return PP_EXIT_USAGE;
	}
	const char *type = NULL;
	int c;
	optind = 2;
	while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (c) {
		case 't': type = optarg; break;
		case 'h': template_usage(stdout); return PP_EXIT_OK;
		default: template_usage(stderr); return PP_EXIT_USAGE;
		}
	}
	if (optind < argc || !type) {
		fprintf(stderr,
			optind < argc ? "pushpool template: unexpected argument \"%s\"\n"
				      : "pushpool template: --type is required%s\n",
			optind < argc ? argv[optind] : "");
		template_usage(stderr);
		return PP_EXIT_USAGE;
	}
	if (!pp_pool_type_canonical(type)) {
		fprintf(stderr, "pushpool template: unknown pool type \"%s\"\n", type);
		template_usage(stderr);
		return PP_EXIT_USAGE;
	}
	struct pp_json *tmpl = NULL;
	struct pp_error err = {0};
	if (pp_template_default(pp_pool_type_canonical(type), &tmpl, &err))
		return fail_exit("template", &err);
	int rc = print_json(tmpl);
	pp_json_free(tmpl);
	return rc;
}

static void render_usage(FILE *f)
{
	fprintf(f,
		"usage: pushpool render (-p POOL [-c CONFIG] | --type TYPE | --template FILE "
		"[--type TYPE])\n"
		"                       [-v KEY=VALUE]... [--vars FILE|-] [--run-id ID] "
		"[--run-name NAME]\n"
		"Print the job configuration a flow run would be submitted with.\n"
		"  -p, --pool POOL      a [pool] of the config file (%s)\n"
		"  -c, --config FILE    config file for --pool\n"
		"      --type TYPE      a push pool type's built-in template\n"
		"      --template FILE  a base job template file\n"
		"  -v, --var KEY=VALUE  a job variable; VALUE is JSON when it parses, else a "
		"string\n"
		"      --vars FILE|-    job variables as a JSON object (- reads stdin); -v wins\n"
		"      --run-id ID      flow run id (default %s)\n"
		"      --run-name NAME  flow run name (default %s)\n"
		"      --request        with -p: print the HTTP requests the submission would\n"
		"                       send (nothing is sent; credentials are not applied)\n",
		pp_cmd_config_path(NULL), PREVIEW_RUN_ID, PREVIEW_RUN_NAME);
}

static int read_vars(const char *path, struct pp_json **out, struct pp_error *err)
{
	int rc;
	if (strcmp(path, "-")) {
		rc = pp_json_parse_file(path, NULL, out, err);
	} else {
		struct pp_buf b;
		char chunk[4096];
		size_t n;
		pp_buf_init(&b, VARS_STDIN_MAX);
		rc = 0;
		while (!rc && (n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
			rc = pp_buf_append(&b, chunk, n);
		if (rc)
			rc = pp_fail(err, PP_EINVALID, "stdin: job variables over %zu bytes",
				     VARS_STDIN_MAX);
		else if (ferror(stdin))
			rc = pp_fail(err, PP_EIO, "stdin: read error");
		else if ((rc = pp_json_parse(pp_buf_str(&b), b.len, NULL, out, err)))
			pp_error_prefix(err, "stdin: ");
		pp_buf_free(&b);
	}
	if (!rc && (*out)->type != PP_JSON_OBJECT) {
		rc = pp_fail(err, PP_EINVALID, "%s: job variables must be a JSON object, got %s",
			     strcmp(path, "-") ? path : "stdin", pp_json_type_name((*out)->type));
		pp_json_free(*out);
		*out = NULL;
	}
	return rc;
}

/* The submission's requests for the rendered job, without sending any. */
static int print_requests(struct pp_pool *pool, const struct pp_run_ctx *ctx,
			  const struct pp_json *job, struct pp_error *err)
{
	struct pp_run_io io = {0};
	struct pp_buf out;
	pp_buf_init(&out, REQUEST_DUMP_MAX);
	pp_pool_io_init(pool, &io, ctx->flow_run_id, ctx->flow_run_name, job);
	int rc = pp_exec_io_prepare(&io, pool->prov, err);
	if (!rc)
		rc = pp_request_dump(pool->prov, &io, &out, err);
	if (!rc && (fputs(pp_buf_str(&out), stdout) == EOF || fflush(stdout)))
		rc = pp_fail(err, PP_EIO, "stdout: write error");
	if (io.state)
		pp_exec_io_release(&io, pool->prov);
	pp_run_io_free_strings(&io);
	pp_buf_free(&out);
	return rc;
}

int pp_cmd_render(int argc, char **argv)
{
	enum { OPT_TYPE = 256, OPT_TEMPLATE, OPT_VARS, OPT_RUN_ID, OPT_RUN_NAME, OPT_REQUEST };
	static const struct option opts[] = {
		{"pool", required_argument, NULL, 'p'},
		{"config", required_argument, NULL, 'c'},
		{"type", required_argument, NULL, OPT_TYPE},
		{"template", required_argument, NULL, OPT_TEMPLATE},
		{"var", required_argument, NULL, 'v'},
		{"vars", required_argument, NULL, OPT_VARS},
		{"run-id", required_argument, NULL, OPT_RUN_ID},
		{"run-name", required_argument, NULL, OPT_RUN_NAME},
		{"request", no_argument, NULL, OPT_REQUEST},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct render_source src = {0};
	struct pp_run_ctx ctx = {.flow_run_id = PREVIEW_RUN_ID, .flow_run_name = PREVIEW_RUN_NAME};
	const char *vars_path = NULL;
	struct pp_json *kv_vars = pp_json_new(PP_JSON_OBJECT), *run_vars = NULL, *job = NULL;
	struct pp_error err = {0};
	struct pp_config cfg;
	int status = PP_EXIT_OK, c;
	if (!kv_vars) {
		fprintf(stderr, "pushpool render: out of memory\n");
		return PP_EXIT_SOFTWARE;
	}
	optind = 1;
	while (status == PP_EXIT_OK && (c = getopt_long(argc, argv, "p:c:v:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': src.pool_name = optarg; break;
		case 'c': src.config_path = optarg; break;
		case OPT_TYPE: src.pool_type = optarg; break;
		case OPT_TEMPLATE: src.template_path = optarg; break;
		case OPT_VARS: vars_path = optarg; break;
		case OPT_RUN_ID: ctx.flow_run_id = optarg; break;
		case OPT_RUN_NAME: ctx.flow_run_name = optarg; break;
		case OPT_REQUEST: src.requests = true; break;
		case 'v':
			if (pp_vars_set_kv(kv_vars, optarg, &err)) {
				fail_exit("render", &err);
				status = PP_EXIT_USAGE;
			}
			break;
		case 'h':
			render_usage(stdout);
			pp_json_free(kv_vars);
			return PP_EXIT_OK;
		default: status = PP_EXIT_USAGE; break;
		}
	}
	if (status == PP_EXIT_OK) {
		const char *problem = NULL;
		if (optind < argc)
			problem = "unexpected argument";
		else if (!src.pool_name && !src.pool_type && !src.template_path)
			problem = "give -p POOL, --type TYPE or --template FILE";
		else if (src.pool_name && (src.pool_type || src.template_path))
			problem = "-p takes the type and template from the config; drop "
				  "--type/--template";
		else if (src.config_path && !src.pool_name)
			problem = "-c needs -p";
		else if (src.requests && !src.pool_name)
			problem = "--request needs -p (the pool's endpoint and credentials)";
		else if (src.pool_type && !src.template_path &&
			 !pp_pool_type_canonical(src.pool_type))
			problem = "unknown pool type";
		if (problem) {
			fprintf(stderr, "pushpool render: %s%s%s\n", problem,
				optind < argc ? ": " : "", optind < argc ? argv[optind] : "");
			status = PP_EXIT_USAGE;
		}
	}
	if (status != PP_EXIT_OK) {
		render_usage(stderr);
		pp_json_free(kv_vars);
		return status;
	}
	int rc = 0;
	if (vars_path) {
		rc = read_vars(vars_path, &run_vars, &err);
		pp_json_foreach (v, kv_vars) {
			if (!rc)
				rc = pp_json_set(run_vars, v->key, pp_json_clone(v));
		}
		pp_json_free(kv_vars);
	} else {
		run_vars = kv_vars;
	}
	if (!rc)
		rc = pp_cmd_check_vars(run_vars, &err);
	src.run_vars = run_vars;
	src.ctx = &ctx;
	struct pp_pool *pool = NULL;
	bool config_error = false;
	if (!rc && !src.pool_name) {
		rc = render_template(&src, &job, &err);
	} else if (!rc && !(rc = pp_config_init(&cfg, &err))) {
		rc = render_pool(&src, &cfg, &pool, &job, &config_error, &err);
		/* Failing before the pool and its type were found is a
		 * configuration error (or a missing config file), not bad job data. */
		if (rc && config_error)
			status = rc == PP_ENOTFOUND ? PP_EXIT_NOINPUT : PP_EXIT_CONFIG;
		if (!rc && src.requests)
			rc = print_requests(pool, &ctx, job, &err);
		pp_pool_close(pool);
		pp_config_free(&cfg);
	}
	pp_json_free(run_vars);
	if (rc) {
		int exit_code = fail_exit("render", &err);
		return status != PP_EXIT_OK ? status : exit_code;
	}
	status = src.requests ? PP_EXIT_OK : print_json(job);
	pp_json_free(job);
	return status;
}
