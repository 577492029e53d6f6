/* pushpool deploy: apply declared deployments (a prefect.yaml's
 * `deployments:`, or the configuration's [deployment "NAME"] sections) to
 * the run store, all or nothing (docs/deployments.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "dispatcher/deploy_spec.h"
#include "dispatcher/deployment.h"
#include "store/deploy.h"
#include "store/store.h"

static void usage(FILE *to)
{
	fprintf(to, "usage: pushpool deploy [-c FILE] [--file prefect.yaml] [--name NAME]...\n"
		    "Create or update deployments in the run store: those of a Prefect project\n"
		    "file's deployments: section (--file), else the configuration's\n"
		    "[deployment \"NAME\"] sections; --name picks some (repeatable). Every one is\n"
		    "checked first and they are applied in one transaction: all or nothing.\n"
		    "Applying the same declarations again changes nothing; a schedule no longer\n"
		    "declared stops, and its unstarted future runs are removed.\n"
		    "Exit status: 0 applied; 64 usage; 65 bad content in the file (the message\n"
		    "names the field and FILE:LINE), or a work queue the pool does not have;\n"
		    "74 the file cannot be read; 78 a bad configuration or [deployment]\n"
		    "section; 75 the store is busy or unreachable (try again).\n");
}

/* The configuration's sections (*n); those named, when names are given,
 * are moved to the front (*use of them). */
static int from_config(const struct pp_config *cfg, char **names, size_t nnames,
		       struct pp_deploy_spec **out, size_t *n, size_t *use, struct pp_error *err)
{
	int rc = pp_deploy_specs_from_config(cfg, out, n, err);
	*use = rc ? 0 : *n;
	if (rc || !nnames)
		return rc;
	size_t kept = 0;
	for (size_t i = 0; i < nnames && !rc; i++) {
		size_t j = 0;
		while (j < *n && strcmp((*out)[j].name, names[i]))
			j++;
		if (j == *n)
			rc = pp_fail(err, PP_EINVALID, "%s: no [deployment \"%s\"] section",
				     cfg->path, names[i]);
	}
	for (size_t j = 0; j < *n && !rc; j++) {
		bool want = false;
		for (size_t i = 0; i < nnames; i++)
			want |= !strcmp((*out)[j].name, names[i]);
		if (want) {
			struct pp_deploy_spec t = (*out)[kept];
			(*out)[kept++] = (*out)[j];
			(*out)[j] = t;
		}
	}
	if (rc) {
		pp_deploy_specs_free(*out, *n);
		*out = NULL;
		*n = 0;
		return rc;
	}
	*use = kept;
	return 0;
}

/* Each deployment's work queue exists on its pool (the default one always
 * does): said here with the deployment's FILE:LINE; the store checks again
 * inside the transaction. */
static int check_queues(struct pp_store *s, const struct pp_deploy_spec *specs, size_t n,
			struct pp_error *err)
{
	struct pp_queue_rec *q = NULL;
	int nq = 0;
	int rc = pp_queue_list(s, NULL, &q, &nq, err);
	for (size_t i = 0; i < n && !rc; i++) {
		const char *want = specs[i].queue;
		if (!want || !strcmp(want, PP_DEFAULT_QUEUE))
			continue;
		bool found = false;
		for (int k = 0; k < nq && !found; k++)
			found = !strcmp(q[k].pool, specs[i].pool) && !strcmp(q[k].name, want);
		if (!found)
			rc = pp_fail(
				err, PP_EINVALID,
				"%s: deployment %s: work_pool.work_queue_name: pool \"%s\" has no "
				"work queue \"%s\" (create it with `pushpool queue set %s %s`)",
				specs[i].where ? specs[i].where : "?", specs[i].name, specs[i].pool,
				want, specs[i].pool, want);
	}
	pp_queue_recs_free(q, nq);
	return rc;
}

int pp_cmd_deploy(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"file", required_argument, NULL, 'f'},
		{"name", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL, *file = NULL;
	char **names = calloc((size_t)argc + 1, sizeof(char *));
	size_t nnames = 0;
	int c;
	if (!names)
		return PP_EXIT_SOFTWARE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:f:n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'f': file = optarg; break;
		case 'n': names[nnames++] = optarg; break;
		case 'h':
			usage(stdout);
			free(names);
			return PP_EXIT_OK;
		default: free(names); return PP_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		usage(stderr);
		free(names);
		return PP_EXIT_USAGE;
	}
	struct pp_config cfg;
	int st = pp_cmd_load_config("deploy", path, &cfg);
	if (st) {
		free(names);
		return st;
	}
	struct pp_deploy_spec *specs = NULL;
	size_t all = 0, n = 0;
	struct pp_error err = {0};
	int rc = file ? pp_deploy_specs_from_file(file, &cfg, (const char *const *)names, nnames,
						  &specs, &all, &err)
		      : from_config(&cfg, names, nnames, &specs, &all, &n, &err);
	if (file)
		n = all;
	/* Bad content in a file is data (65), in the configuration 78. */
	int bad = file ? PP_EXIT_DATAERR : PP_EXIT_CONFIG;
	if (rc) {
		fprintf(stderr, "pushpool deploy: %s\n", err.msg);
		st = rc == PP_EINVALID ? bad : pp_exit_status(rc);
	} else if (n == 0) {
		fprintf(stderr, "pushpool deploy: nothing to deploy: %s declares no deployment\n",
			file ? file : cfg.path);
		st = bad;
	}
	struct pp_dep_rec *recs = NULL;
	if (!st && (rc = pp_deployment_recs(specs, n, &recs, &err))) {
		fprintf(stderr, "pushpool deploy: %s\n", err.msg);
		st = rc == PP_EINVALID ? bad : pp_exit_status(rc);
	}
	struct pp_store *s = NULL;
	if (!st)
		st = pp_cmd_open_store("deploy", &cfg, &s);
	if (!st && (rc = check_queues(s, specs, n, &err))) {
		fprintf(stderr, "pushpool deploy: %s\n", err.msg);
		st = rc == PP_EINVALID ? bad : pp_exit_status(rc);
	}
	struct pp_apply_result res = {0};
	const char **each = st ? NULL : calloc(n ? n : 1, sizeof(*each));
	if (!st && !each)
		st = PP_EXIT_SOFTWARE;
	res.each = each;
	if (!st && (rc = pp_deploy_apply(s, recs, (int)n, pp_wall_ms() / 1000, &res, &err))) {
		fprintf(stderr, "pushpool deploy: %s (nothing applied)\n", err.msg);
		st = rc == PP_ENOTFOUND || rc == PP_EINVALID ? bad : pp_exit_status(rc);
	} else if (!st) {
		for (size_t i = 0; i < n; i++) {
			char *name = pp_cmd_printable(specs[i].name);
			printf("%s %s\n", each[i] ? each[i] : "?", name ? name : "?");
			free(name);
		}
		printf("deployments: %d created, %d updated, %d unchanged; schedules: %d added, %d "
		       "removed; %d unstarted run(s) removed\n",
		       res.created, res.updated, res.unchanged, res.sched_added, res.sched_removed,
		       res.runs_removed);
	}
	pp_store_close(s);
	pp_dep_recs_free(recs, (int)n);
	pp_deploy_specs_free(specs, all);
	free(each);
	pp_config_free(&cfg);
	free(names);
	return st;
}
