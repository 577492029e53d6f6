/* pushpool store migrate: bring the run store's schema to this version.
 * PostgreSQL stores are only migrated here (the dispatchers refuse an old
 * schema instead of changing a shared database on their own); the embedded
 * SQLite store also migrates itself on open. pushpool store id: print the
 * store's id, the value of the pushpool-store-id label on remote objects. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "lib/log.h"
#include "dispatcher/loop.h"
#include "store/store.h"
#include "store/pg.h"

static bool is_pg_url(const char *url)
{
	return !strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11);
}

/* sub: "migrate" or "id" */
static int store_cmd(const char *sub, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'h': printf("usage: pushpool store %s [-c FILE]\n", sub); return PP_EXIT_OK;
		default: return PP_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pushpool store %s: unexpected argument %s\n", sub, argv[optind]);
		return PP_EXIT_USAGE;
	}
	struct pp_config cfg;
	struct pp_error err = {0};
	int rc = pp_config_init(&cfg, &err);
	if (!rc)
		rc = pp_config_load(&cfg, pp_cmd_config_path(path), &err);
	if (rc) {
		fprintf(stderr, "pushpool store %s: %s\n", sub, err.msg);
		pp_config_free(&cfg);
		return rc == PP_ENOTFOUND ? PP_EXIT_NOINPUT : PP_EXIT_CONFIG;
	}
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, stderr);
	char url[1024];
	pp_store_url(&cfg, url, sizeof(url));
	struct pp_store *s = NULL;
	bool migrate = !strcmp(sub, "migrate");
	char id[PP_ID_LEN] = "";
	if (!migrate) {
		rc = pp_store_open(url, &s, &err);
		if (!rc)
			rc = s->ops->store_id(s, id, &err);
	} else if (is_pg_url(url)) {
		rc = pp_store_pg_open_unmigrated(url, &s, &err);
	} else {
		if (!cfg.store.url || !*cfg.store.url)
			mkdir(cfg.dispatcher.state_dir, 0750);
		rc = pp_store_open(url, &s, &err);
	}
	if (!rc && migrate)
		rc = s->ops->migrate(s, &err);
	pp_store_close(s);
	pp_config_free(&cfg);
	if (rc) {
		fprintf(stderr, "pushpool store %s: %s\n", sub, err.msg);
		return pp_exit_status(rc);
	}
	printf("%s\n", migrate ? "store schema is current" : id);
	return PP_EXIT_OK;
}

int pp_cmd_store(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "migrate") || !strcmp(argv[1], "id")))
		return store_cmd(argv[1], argc - 1, argv + 1);
	bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
	fprintf(help ? stdout : stderr,
		"usage: pushpool store migrate|id [-c FILE]\n"
		"migrate: apply the run store's schema migrations.\n"
		"id: print the store's id (the pushpool-store-id label of remote objects).\n");
	return help ? PP_EXIT_OK : PP_EXIT_USAGE;
}
