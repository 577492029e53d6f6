/* Claim latency against the number of runs stored: bench.sh fills a store
 * with STORED finished runs (the history a store accumulates) and DUE
 * SCHEDULED runs of POOL, then this program, linked to libpushpool.a,
 * claims them BATCH at a time, as the loop does, and prints one JSON object
 * with the median and 99th percentile wall time of one claim.
 *
 *   claim STORE_URL POOL ROUNDS BATCH
 *
 * Wall time, not thread CPU time: a claim's cost includes the store's I/O.
 * The median is the figure to read on a shared machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: claim STORE_URL POOL ROUNDS BATCH\n");
		return 64;
	}
	int rounds = atoi(argv[3]), batch = atoi(argv[4]);
	if (rounds < 1 || batch < 1) {
		fprintf(stderr, "claim: ROUNDS and BATCH must be positive\n");
		return 64;
	}
	struct pp_error err = {0};
	struct pp_store *s = NULL;
	if (pp_store_open(argv[1], &s, &err)) {
		fprintf(stderr, "claim: %s\n", err.msg);
		return 69;
	}
	double *us = calloc((size_t)rounds, sizeof(*us));
	int rc = us ? 0 : 70, claimed = 0;
	for (int i = 0; !rc && i < rounds; i++) {
		struct pp_run_rec *runs = NULL;
		int n = 0;
		double t0 = now_us();
		if (s->ops->claim(s, argv[2], "bench-claim", 600000, batch, &runs, &n, &err)) {
			fprintf(stderr, "claim: %s\n", err.msg);
			rc = 69;
		}
		us[i] = now_us() - t0;
		claimed += n;
		pp_run_recs_free(runs, n);
	}
	/* Every round must have had runs to claim, or it measured an empty claim. */
	if (!rc && claimed < rounds * batch) {
		fprintf(stderr, "claim: claimed %d runs, want %d: too few due runs stored\n",
			claimed, rounds * batch);
		rc = 69;
	}
	if (!rc) {
		qsort(us, (size_t)rounds, sizeof(*us), cmp_double);
		printf("{\"rounds\":%d,\"batch\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f}\n", rounds,
		       batch, us[rounds / 2], us[(rounds * 99 + 99) / 100 - 1]);
	}
	free(us);
	pp_store_close(s);
	return rc;
}
