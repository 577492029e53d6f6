/* pushpool check: load and validate the configuration, or print the
 * documented defaults of every key. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "lib/buf.h"
#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "lib/err.h"
#include "lib/log.h"

enum { OPT_PRINT_DEFAULTS = 256, OPT_MARKDOWN, OPT_PRINT };

static const struct option check_opts[] = {
	{"config", required_argument, NULL, 'c'},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{"print-defaults", no_argument, NULL, OPT_PRINT_DEFAULTS},
	{"markdown", no_argument, NULL, OPT_MARKDOWN},
	{"print", no_argument, NULL, OPT_PRINT},
	{NULL, 0, NULL, 0},
};

static void check_usage(FILE *out)
{
	fprintf(out, "usage: pushpool check [-c FILE] [-n] [-q] [--print]\n"
		     "       pushpool check --print-defaults [--markdown]\n\n"
		     "Load and validate the configuration: every key, pool types, template\n"
		     "files, credential sections and files. Prints \"configuration OK\" and\n"
		     "exits 0, or prints each problem as FILE:LINE: message and exits 78.\n\n"
		     "  -c, --config FILE   file to check (default $PUSHPOOL_CONFIG or\n"
		     "                      /etc/pushpool/pushpool.conf)\n"
		     "  -n                  check only (accepted for relayd/nginx habit)\n"
		     "  -q, --quiet         print nothing when the configuration is OK\n"
		     "  --print             then print the effective configuration (file,\n"
		     "                      defaults, environment), secrets as [REDACTED]\n"
		     "  --print-defaults    every key with its type, default and description\n"
		     "  --markdown          ... as Markdown tables (docs/config.md)\n");
}

/* Problems may quote values; secrets stay out of them all the same. */
static void print_redacted(FILE *out, struct pp_buf *b)
{
	if (!b->len)
		return;
	pp_redact(b->data);
	fputs(b->data, out);
}

int pp_cmd_check(int argc, char **argv)
{
	const char *path_opt = NULL;
	bool quiet = false, print_defaults = false, markdown = false, print = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:nqh", check_opts, NULL)) != -1) {
		switch (c) {
		case 'c': path_opt = optarg; break;
		case 'n': break;
		case 'q': quiet = true; break;
		case 'h': check_usage(stdout); return PP_EXIT_OK;
		case OPT_PRINT_DEFAULTS: print_defaults = true; break;
		case OPT_MARKDOWN: markdown = true; break;
		case OPT_PRINT: print = true; break;
		default: check_usage(stderr); return PP_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pushpool check: unexpected argument \"%s\"\n", argv[optind]);
		check_usage(stderr);
		return PP_EXIT_USAGE;
	}
	if (markdown && !print_defaults) {
		fprintf(stderr, "pushpool check: --markdown goes with --print-defaults\n");
		return PP_EXIT_USAGE;
	}

	struct pp_buf out;
	pp_buf_init(&out, 1 << 20);
	if (print_defaults) {
		int rc = pp_config_print_defaults(&out, markdown);
		if (!rc)
			fputs(pp_buf_str(&out), stdout);
		else
			fprintf(stderr, "pushpool check: %s\n", pp_strerror(rc));
		pp_buf_free(&out);
		return rc ? PP_EXIT_SOFTWARE : PP_EXIT_OK;
	}

	const char *path = pp_cmd_config_path(path_opt);
	struct pp_config cfg;
	struct pp_error err = {0};
	int status = PP_EXIT_OK;
	int rc = pp_config_init(&cfg, &err);
	if (!rc)
		rc = pp_config_load_report(&cfg, path, &out, &err);
	if (!rc)
		rc = pp_config_validate(&cfg, &out);
	print_redacted(stderr, &out);
	if (rc == PP_EINVALID) {
		status = PP_EXIT_CONFIG;
	} else if (rc) {
		pp_redact(err.msg);
		fprintf(stderr, "pushpool check: %s\n", err.msg);
		status = pp_exit_status(rc);
	} else {
		struct pp_buf shown;
		pp_buf_init(&shown, 1 << 20);
		if (print && pp_config_print(&cfg, &shown) == 0)
			fputs(pp_buf_str(&shown), stdout);
		pp_buf_free(&shown);
		if (!quiet)
			printf("%sconfiguration OK\n", print ? "\n; " : "");
	}
	pp_config_free(&cfg);
	pp_buf_free(&out);
	return status;
}
