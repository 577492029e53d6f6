/* pushpool pools ls, pushpool pool pause|resume|set: pools as the run
 * store sees them (pause and concurrency limit shared by every dispatcher
 * on the store), like `prefect work-pool ls`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "store/deploy.h"
#include "store/store.h"

static void pools_usage(FILE *to)
{
	fprintf(to, "usage: pushpool pools [-c FILE] ls\n"
		    "Every pool of the configuration and of the store: its type, whether it\n"
		    "is paused, its store-wide concurrency limit, its work queues and its runs\n"
		    "by state (ACTIVE: submitting, submitted, running or cancelling; FAILED:\n"
		    "failed, crashed or dead).\n");
}

static void pool_usage(FILE *to)
{
	fprintf(to, "usage: pushpool pool create NAME --type TYPE ... (see pool create --help)\n"
		    "       pushpool pool [-c FILE] pause NAME\n"
		    "       pushpool pool [-c FILE] resume NAME\n"
		    "       pushpool pool [-c FILE] set NAME --limit N\n"
		    "pause: no run of the pool starts (runs under way go on; due runs wait and\n"
		    "say so in `runs ls`); resume undoes it. set --limit: at most N runs of the\n"
		    "pool under way at once across every dispatcher on the store (0: none).\n");
}

/* -c FILE first, --help anywhere: the index of the subcommand. */
static int lead(int argc, char **argv, const char **path, bool *help)
{
	int i = 1;
	if (i + 1 < argc && (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))) {
		*path = argv[i + 1];
		i += 2;
	}
	for (int j = i; j < argc; j++)
		if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h"))
			*help = true;
	return i;
}

static const struct pp_pool_rec *find_rec(const struct pp_pool_rec *v, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

static void print_pool(const char *name, const char *type, const struct pp_pool_rec *r,
		       const struct pp_queue_rec *q, int nq)
{
	char queues[256] = "", limit[16] = "-";
	size_t len = 0;
	for (int i = 0; i < nq && len < sizeof(queues) - 1; i++)
		if (!strcmp(q[i].pool, name))
			len += (size_t)snprintf(queues + len, sizeof(queues) - len, "%s%s",
						len ? "," : "", q[i].name);
	if (r && r->concurrency_limit > 0)
		snprintf(limit, sizeof(limit), "%d", r->concurrency_limit);
	long by[PP_ST_COUNT] = {0};
	if (r)
		memcpy(by, r->by_state, sizeof(by));
	char *n = pp_cmd_printable(name), *qs = pp_cmd_printable(queues[0] ? queues : "default");
	printf("%-20s  %-16s  %-6s  %-5s  %-24s  %9ld  %6ld  %9ld  %6ld  %9ld\n", n ? n : "?", type,
	       r && r->paused ? "yes" : "no", limit, qs ? qs : "?", by[PP_ST_SCHEDULED],
	       by[PP_ST_SUBMITTING] + by[PP_ST_SUBMITTED] + by[PP_ST_RUNNING] +
		       by[PP_ST_CANCELLING],
	       by[PP_ST_SUCCEEDED], by[PP_ST_FAILED] + by[PP_ST_CRASHED] + by[PP_ST_DEAD],
	       by[PP_ST_CANCELLED]);
	free(n);
	free(qs);
}

int pp_cmd_pools(int argc, char **argv)
{
	const char *path = NULL;
	bool help = false;
	int i = lead(argc, argv, &path, &help);
	if (help) {
		pools_usage(stdout);
		return PP_EXIT_OK;
	}
	if (i != argc - 1 || strcmp(argv[i], "ls")) {
		pools_usage(stderr);
		return PP_EXIT_USAGE;
	}
	struct pp_config cfg;
	int st = pp_cmd_load_config("pools", path, &cfg);
	if (st)
		return st;
	struct pp_store *s = NULL;
	st = pp_cmd_open_store("pools", &cfg, &s);
	struct pp_pool_rec *recs = NULL;
	struct pp_queue_rec *qs = NULL;
	int n = 0, nq = 0;
	struct pp_error err = {0};
	if (!st &&
	    (pp_pool_list(s, true, &recs, &n, &err) || pp_queue_list(s, NULL, &qs, &nq, &err))) {
		fprintf(stderr, "pushpool pools ls: %s\n", err.msg);
		st = pp_exit_status(err.code);
	}
	if (!st) {
		printf("%-20s  %-16s  %-6s  %-5s  %-24s  %9s  %6s  %9s  %6s  %9s\n", "NAME", "TYPE",
		       "PAUSED", "LIMIT", "QUEUES", "SCHEDULED", "ACTIVE", "SUCCEEDED", "FAILED",
		       "CANCELLED");
		for (size_t k = 0; k < cfg.npools; k++)
			print_pool(cfg.pools[k].name, cfg.pools[k].type,
				   find_rec(recs, n, cfg.pools[k].name), qs, nq);
		/* Pools the store knows that this configuration does not. */
		for (int k = 0; k < n; k++)
			if (!pp_config_pool(&cfg, recs[k].name))
				print_pool(recs[k].name, "(not configured)", &recs[k], qs, nq);
	}
	pp_pool_recs_free(recs, n);
	pp_queue_recs_free(qs, nq);
	pp_store_close(s);
	pp_config_free(&cfg);
	return st;
}

int pp_cmd_pool(int argc, char **argv)
{
	/* `pool create` writes a pool section (and may provision it). */
	if (argc > 1 && !strcmp(argv[1], "create"))
		return pp_cmd_pool_create(argc, argv);
	const char *path = NULL;
	bool help = false;
	int i = lead(argc, argv, &path, &help);
	if (help) {
		pool_usage(stdout);
		return PP_EXIT_OK;
	}
	const char *sub = i < argc ? argv[i] : "";
	int limit = -1, paused = -1;
	if ((!strcmp(sub, "pause") || !strcmp(sub, "resume")) && i + 2 == argc) {
		paused = !strcmp(sub, "pause");
	} else if (!strcmp(sub, "set") && i + 4 == argc && !strcmp(argv[i + 2], "--limit")) {
		char *end;
		long v = strtol(argv[i + 3], &end, 10);
		if (end == argv[i + 3] || *end || v < 0 || v > 1000000) {
			fprintf(stderr, "pushpool pool set: --limit %s: expected 0..1000000\n",
				argv[i + 3]);
			return PP_EXIT_USAGE;
		}
		limit = (int)v;
	} else {
		pool_usage(stderr);
		return PP_EXIT_USAGE;
	}
	const char *name = argv[i + 1];
	struct pp_config cfg;
	int st = pp_cmd_load_config("pool", path, &cfg);
	if (st)
		return st;
	struct pp_store *s = NULL;
	if (!pp_config_pool(&cfg, name)) {
		fprintf(stderr, "pushpool pool: %s: no [pool \"%s\"] section\n", cfg.path, name);
		st = PP_EXIT_CONFIG;
	}
	if (!st)
		st = pp_cmd_open_store("pool", &cfg, &s);
	struct pp_error err = {0};
	if (!st && pp_pool_set(s, name, limit, paused, &err)) {
		fprintf(stderr, "pushpool pool %s: %s\n", sub, err.msg);
		st = pp_exit_status(err.code);
	} else if (!st) {
		if (paused >= 0)
			printf("pool %s %s\n", name, paused ? "paused" : "resumed");
		else
			printf("pool %s: concurrency limit %d%s\n", name, limit,
			       limit ? "" : " (none)");
	}
	pp_store_close(s);
	pp_config_free(&cfg);
	return st;
}
