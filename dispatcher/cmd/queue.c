/* pushpool queue ls | set | pause | resume: a pool's work queues in the
 * run store. Runs are handed out by queue priority (1 first), then by
 * their scheduled time; a queue's limit and pause hold across every
 * dispatcher on the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "store/deploy.h"
#include "store/store.h"

static void usage(FILE *to)
{
	fprintf(to,
		"usage: pushpool queue [-c FILE] ls [POOL]\n"
		"       pushpool queue [-c FILE] set POOL NAME [--priority N] [--limit N]\n"
		"       pushpool queue [-c FILE] pause POOL NAME\n"
		"       pushpool queue [-c FILE] resume POOL NAME\n"
		"set creates or changes a queue: --priority N (1 runs first, unique within the\n"
		"pool; a new queue without it comes after the others), --limit N (at most N\n"
		"runs of the queue under way at once; 0: none). A pool's queue \"default\" is\n"
		"there without being set: no limit, after every queue with a priority.\n");
}

static int number(const char *opt, const char *v, int min, int *out)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (end == v || *end || n < min || n > 1000000) {
		fprintf(stderr, "pushpool queue set: %s %s: expected %d..1000000\n", opt, v, min);
		return PP_EXIT_USAGE;
	}
	*out = (int)n;
	return 0;
}

static int ls(struct pp_store *s, const char *pool)
{
	struct pp_queue_rec *q = NULL;
	int n = 0;
	struct pp_error err = {0};
	if (pp_queue_list(s, pool, &q, &n, &err)) {
		fprintf(stderr, "pushpool queue ls: %s\n", err.msg);
		return pp_exit_status(err.code);
	}
	printf("%-20s  %-20s  %8s  %5s  %6s  %6s  %7s\n", "POOL", "QUEUE", "PRIORITY", "LIMIT",
	       "PAUSED", "ACTIVE", "WAITING");
	for (int i = 0; i < n; i++) {
		char limit[16] = "-";
		if (q[i].concurrency_limit > 0)
			snprintf(limit, sizeof(limit), "%d", q[i].concurrency_limit);
		char *p = pp_cmd_printable(q[i].pool), *nm = pp_cmd_printable(q[i].name);
		printf("%-20s  %-20s  %8d  %5s  %6s  %6ld  %7ld\n", p ? p : "?", nm ? nm : "?",
		       q[i].priority, limit, q[i].paused ? "yes" : "no", q[i].active, q[i].waiting);
		free(p);
		free(nm);
	}
	pp_queue_recs_free(q, n);
	return PP_EXIT_OK;
}

int pp_cmd_queue(int argc, char **argv)
{
	const char *path = NULL;
	int i = 1;
	if (i + 1 < argc && (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))) {
		path = argv[i + 1];
		i += 2;
	}
	for (int j = i; j < argc; j++) {
		if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h")) {
			usage(stdout);
			return PP_EXIT_OK;
		}
	}
	const char *sub = i < argc ? argv[i] : "";
	int priority = 0, limit = -1, paused = -1, st = 0;
	if (!strcmp(sub, "ls") && argc - i <= 2) {
		/* ls [POOL] */
	} else if ((!strcmp(sub, "pause") || !strcmp(sub, "resume")) && argc - i == 3) {
		paused = !strcmp(sub, "pause");
	} else if (!strcmp(sub, "set") && argc - i >= 3) {
		for (int j = i + 3; j < argc && !st; j += 2) {
			if (j + 1 >= argc)
				st = PP_EXIT_USAGE;
			else if (!strcmp(argv[j], "--priority"))
				st = number("--priority", argv[j + 1], 1, &priority);
			else if (!strcmp(argv[j], "--limit"))
				st = number("--limit", argv[j + 1], 0, &limit);
			else
				st = PP_EXIT_USAGE;
		}
	} else {
		st = PP_EXIT_USAGE;
	}
	if (st) {
		usage(stderr);
		return st;
	}
	const char *pool = i + 1 < argc ? argv[i + 1] : NULL;
	struct pp_config cfg;
	st = pp_cmd_load_config("queue", path, &cfg);
	if (st)
		return st;
	struct pp_store *s = NULL;
	if (pool && !pp_config_pool(&cfg, pool)) {
		fprintf(stderr, "pushpool queue: %s: no [pool \"%s\"] section\n", cfg.path, pool);
		st = PP_EXIT_CONFIG;
	}
	if (!st)
		st = pp_cmd_open_store("queue", &cfg, &s);
	if (!st && !strcmp(sub, "ls")) {
		st = ls(s, pool);
	} else if (!st) {
		const char *name = argv[i + 2];
		struct pp_error err = {0};
		if (pp_queue_set(s, pool, name, priority, limit, paused, &err)) {
			fprintf(stderr, "pushpool queue %s: %s\n", sub, err.msg);
			st = pp_exit_status(err.code);
		} else {
			printf("queue %s of pool %s: %s\n", name, pool,
			       paused == 1   ? "paused"
			       : paused == 0 ? "resumed"
					     : "set");
		}
	}
	pp_store_close(s);
	pp_config_free(&cfg);
	return st;
}
