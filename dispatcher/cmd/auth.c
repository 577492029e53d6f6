/* `pushpool auth check NAME`: resolve a [credentials "NAME"] section, obtain
 * a token (or sign a probe request), and print who we are and for how long,
 * never a secret. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "lib/log.h"

static void usage(FILE *to)
{
	fprintf(to, "usage: pushpool auth check NAME [-c FILE]\n"
		    "Obtain a token for the [credentials \"NAME\"] section (AWS: resolve the keys\n"
		    "and sign a probe request) and print the identity and the token lifetime.\n"
		    "  -c, --config FILE  configuration (default $PUSHPOOL_CONFIG, else\n"
		    "                     /etc/pushpool/pushpool.conf)\n"
		    "Exit: 0 usable, 64 usage, 66 a key file is missing, 69/75 the token endpoint\n"
		    "is unreachable, 77 credentials rejected or absent, 78 configuration.\n");
}

static int check(const struct pp_cred_conf *conf)
{
	struct pp_cred *c = NULL;
	struct pp_error err;
	struct pp_buf id;
	int rc;

	pp_error_clear(&err);
	pp_buf_init(&id, 4096);
	rc = pp_cred_new(conf, &c, &err);
	if (rc) {
		pp_redact(err.msg);
		fprintf(stderr, "pushpool auth check: %s\n", err.msg);
		return rc == PP_EINVALID ? PP_EXIT_CONFIG : pp_exit_status(rc);
	}
	rc = pp_cred_probe(c, &err);
	if (!rc)
		rc = pp_cred_identity(c, &id, &err);
	if (rc) {
		pp_redact(err.msg);
		fprintf(stderr, "pushpool auth check: credentials \"%s\": %s\n", conf->name,
			err.msg);
		pp_buf_free(&id);
		pp_cred_free(c);
		return pp_exit_status(rc);
	}
	if (id.data)
		pp_redact(id.data);
	printf("credentials \"%s\" (%s): ok\n", conf->name, pp_cred_type(c));
	printf("identity: %s\n", pp_buf_str(&id));
	long left = pp_cred_seconds_left(c);
	if (left >= 0)
		printf("token lifetime: %ld s left\n", left);
	else
		printf("token lifetime: does not expire\n");
	const char *project = pp_cred_project(c);
	if (project && *project && pp_cred_project_label(c))
		printf("%s: %s\n", pp_cred_project_label(c), project);
	printf("refreshes: %lu\n", pp_cred_refreshes(c));
	pp_buf_free(&id);
	pp_cred_free(c);
	return PP_EXIT_OK;
}

int pp_cmd_auth(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	int opt;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return PP_EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "check")) {
		fprintf(stderr, "pushpool auth: unknown subcommand \"%s\"\n",
			argc < 2 ? "" : argv[1]);
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	argc--;
	argv++;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		if (opt == 'c') {
			config = optarg;
		} else if (opt == 'h') {
			usage(stdout);
			return PP_EXIT_OK;
		} else {
			usage(stderr);
			return PP_EXIT_USAGE;
		}
	}
	/* NAME may come before or after -c. */
	const char *name = optind < argc ? argv[optind++] : NULL;
	while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		if (opt != 'c') {
			usage(stderr);
			return PP_EXIT_USAGE;
		}
		config = optarg;
	}
	if (!name || optind < argc) {
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	config = pp_cmd_config_path(config);

	struct pp_config cfg;
	struct pp_error err;
	pp_error_clear(&err);
	int rc = pp_config_init(&cfg, &err);
	if (!rc)
		rc = pp_config_load(&cfg, config, &err);
	if (rc) {
		fprintf(stderr, "pushpool auth check: %s\n", err.msg);
		pp_config_free(&cfg);
		return PP_EXIT_CONFIG;
	}
	if ((rc = pp_cmd_trust("auth check", &cfg))) {
		pp_config_free(&cfg);
		return rc;
	}
	const struct pp_cred_conf *conf = pp_config_cred(&cfg, name);
	int status;
	if (!conf) {
		fprintf(stderr, "pushpool auth check: %s: no [credentials \"%s\"] section\n",
			config, name);
		status = PP_EXIT_CONFIG;
	} else {
		status = check(conf);
	}
	pp_config_free(&cfg);
	return status;
}
