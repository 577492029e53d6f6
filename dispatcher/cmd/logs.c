/* `pushpool runs logs ID [--follow] [--tail N] [--since T]`: a run's
 * container output, read from where its cloud keeps it through the pool's
 * provider (the logs op, providers/provider.h). The run's job is rendered
 * from the pool with the run's own variables (its region, cluster,
 * container name) and the provider state restored from the run's infra id,
 * as a dispatcher restarting would. Every line is printed redacted and with
 * control characters escaped. --follow reads on, backing off while nothing
 * new comes, until the run is terminal and a read finds nothing more. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "dispatcher/op_driver.h"
#include "dispatcher/pool.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/time.h"
#include "providers/provider.h"
#include "store/store.h"

/* --follow polls at first this often, doubling to the cap while nothing
 * new comes; new lines bring it back down. */
#define FOLLOW_POLL_MS	   500L
#define FOLLOW_POLL_MAX_MS 5000L
/* --tail keeps at most this many lines. */
#define TAIL_MAX 100000

struct logs_opts {
	const char *id;
	bool follow;
	long tail; /* -1: every line */
	long long since_ms;
};

struct tail_ring {
	char **v;
	long cap, n, next;
};

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* One line as printed (caller frees): its time, then its text, redacted and
 * escaped. */
static int format_line(const struct pp_log_line *ln, char **out)
{
	char when[PP_TIME_LEN] = "-";
	if (ln->ts_ms > 0)
		pp_time_format(ln->ts_ms, true, when);
	pp_redact(ln->text);
	char *t = pp_cmd_printable(ln->text);
	int rc = !t || asprintf(out, "%s  %s", when, t) < 0 ? PP_EXIT_SOFTWARE : 0;
	free(t);
	return rc;
}

/* A page's lines: printed, or kept in the ring while --tail holds them. */
static int emit(struct pp_logs *l, struct tail_ring *ring)
{
	for (size_t i = 0; i < l->n; i++) {
		if (ring->v && !ring->cap)
			continue;
		char *s;
		if (format_line(&l->v[i], &s))
			return PP_EXIT_SOFTWARE;
		if (!ring->v) {
			puts(s);
			free(s);
			continue;
		}
		free(ring->v[ring->next]);
		ring->v[ring->next] = s;
		ring->next = (ring->next + 1) % ring->cap;
		if (ring->n < ring->cap)
			ring->n++;
	}
	fflush(stdout);
	return 0;
}

static void ring_flush(struct tail_ring *ring)
{
	long start = ring->n < ring->cap ? 0 : ring->next;
	for (long i = 0; i < ring->n; i++) {
		long k = (start + i) % ring->cap;
		puts(ring->v[k]);
		free(ring->v[k]);
	}
	free(ring->v);
	memset(ring, 0, sizeof(*ring));
	fflush(stdout);
}

void pp_cmd_runs_logs_usage(FILE *to)
{
	fprintf(to, "usage: pushpool runs [-c FILE] logs ID [--follow] [--tail N] [--since T]\n"
		    "Print a run's container output, read from its cloud (CloudWatch Logs, Cloud\n"
		    "Logging, ACI's container logs, Modal's sandbox logs), one line each: its\n"
		    "time, two spaces, its text (secrets redacted, control characters escaped).\n"
		    "  -f, --follow   keep reading until the run has ended and its output is read\n"
		    "  -n, --tail N   only the last N lines (with --follow: then the new ones)\n"
		    "      --since T  lines from T on: an RFC 3339 time, or a duration ago (10m)\n"
		    "Exit: 0, 64 usage, 66 no such run, 69/75 cloud unavailable, 77 credentials,\n"
		    "78 configuration.\n");
}

static int parse_opts(int argc, char **argv, struct logs_opts *o)
{
	static const struct option longopts[] = {
		{"follow", no_argument, NULL, 'f'},
		{"tail", required_argument, NULL, 'n'},
		{"since", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	int c;
	o->tail = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fn:s:", longopts, NULL)) != -1) {
		char *end;
		double secs;
		int64_t ms;
		switch (c) {
		case 'f': o->follow = true; break;
		case 'n':
			errno = 0;
			o->tail = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || o->tail < 0 || o->tail > TAIL_MAX) {
				fprintf(stderr,
					"pushpool runs logs: --tail takes a number of lines from 0 "
					"to %d, not '%s'\n",
					TAIL_MAX, optarg);
				return PP_EXIT_USAGE;
			}
			break;
		case 's':
			if (!pp_time_parse(optarg, 0, &ms)) {
				o->since_ms = ms;
			} else if (!pp_duration_parse(optarg, &secs) && secs >= 0) {
				o->since_ms = pp_wall_ms() - (long long)(secs * 1000.0);
			} else {
				fprintf(stderr,
					"pushpool runs logs: --since takes an RFC 3339 time or a "
					"duration (10m, 2h), not '%s'\n",
					optarg);
				return PP_EXIT_USAGE;
			}
			break;
		default: pp_cmd_runs_logs_usage(stderr); return PP_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		pp_cmd_runs_logs_usage(stderr);
		return PP_EXIT_USAGE;
	}
	o->id = argv[optind];
	return 0;
}

/* The run's job on its pool: the pool's template and variables under the
 * run's own (a source's template is not fetched: logs need only where the
 * run went, which the run's infra id and variables say). */
int pp_run_logs_open(const struct pp_config *cfg, const struct pp_run_rec *r, struct pp_pool **pool,
		     struct pp_json **job, struct pp_run_io *io, struct pp_error *err)
{
	const struct pp_pool_conf *pc = pp_config_pool(cfg, r->pool);
	if (!pc)
		return pp_fail(err, PP_EINVALID, "run %s: pool \"%s\" is not configured", r->id,
			       r->pool);
	int rc = pp_pool_open(cfg, pc, 0, pool, err);
	if (rc)
		return rc;
	if (!(*pool)->prov->logs)
		return pp_fail(err, PP_EINVALID, "pool %s: %s does not read run logs", r->pool,
			       (*pool)->type);
	struct pp_json *vars = NULL;
	if (r->job_variables && *r->job_variables &&
	    (rc = pp_json_parse(r->job_variables, strlen(r->job_variables), NULL, &vars, err)))
		return pp_error_prefix(err, "run %s: job variables: ", r->id);
	struct pp_run_ctx ctx = {.flow_run_id = r->source_ref ? r->source_ref : r->id,
				 .flow_run_name = r->name,
				 .deployment_name = r->deployment};
	rc = pp_pool_render(*pool, NULL, 0, NULL, vars, &ctx, job, err);
	pp_json_free(vars);
	if (rc)
		return rc;
	pp_pool_io_init(*pool, io, r->id, r->name, *job);
	return pp_run_io_set_infra_id(io, err, "%s", r->infra_id ? r->infra_id : "")
		       ?: pp_exec_io_restore(io, (*pool)->prov, err);
}

void pp_run_logs_close(struct pp_pool *pool, struct pp_json *job, struct pp_run_io *io)
{
	if (io->logs)
		pp_logs_clear(io->logs);
	if (io->state)
		pp_exec_io_release(io, pool->prov);
	pp_run_io_free_strings(io); /* a provider without state */
	pp_json_free(job);
	pp_pool_close(pool);
}

/* Re-read the run: its state and infra id. */
static int reread(struct pp_store *s, const char *id, struct pp_run_rec *r, struct pp_error *err)
{
	struct pp_run_rec fresh;
	int rc = s->ops->get(s, id, &fresh, NULL, NULL, err);
	if (rc)
		return rc;
	pp_run_rec_free(r);
	*r = fresh;
	return 0;
}

int pp_cmd_runs_logs(struct pp_store *s, const struct pp_config *cfg, int argc, char **argv)
{
	struct logs_opts o = {0};
	int st = parse_opts(argc, argv, &o);
	if (st)
		return st;
	struct pp_run_rec r;
	struct pp_error err = {0};
	if (s->ops->get(s, o.id, &r, NULL, NULL, &err)) {
		fprintf(stderr, "pushpool runs logs: %s\n", err.msg);
		return pp_exit_status(err.code);
	}
	/* A run not submitted yet has no output: with --follow, wait for it. */
	long wait = FOLLOW_POLL_MS;
	while (o.follow && !r.infra_id && !pp_store_state_terminal(r.state)) {
		sleep_ms(wait);
		wait = wait * 2 > FOLLOW_POLL_MAX_MS ? FOLLOW_POLL_MAX_MS : wait * 2;
		if (reread(s, o.id, &r, &err)) {
			fprintf(stderr, "pushpool runs logs: %s\n", err.msg);
			pp_run_rec_free(&r);
			return pp_exit_status(err.code);
		}
	}
	if (!r.infra_id || !*r.infra_id) {
		fprintf(stderr, "pushpool runs logs: run %s (%s) never started in its cloud\n",
			r.id, pp_store_state_name(r.state));
		pp_run_rec_free(&r);
		return PP_EXIT_OK;
	}
	struct pp_pool *pool = NULL;
	struct pp_json *job = NULL;
	struct pp_run_io io = {0};
	struct pp_logs logs = {.since_ms = o.since_ms};
	struct tail_ring ring = {0};
	int rc = pp_run_logs_open(cfg, &r, &pool, &job, &io, &err);
	if (!rc && o.tail >= 0 && !(ring.v = calloc((size_t)o.tail + 1, sizeof(char *))))
		rc = pp_fail(&err, PP_ENOMEM, "out of memory");
	ring.cap = o.tail;
	io.logs = &logs;
	wait = FOLLOW_POLL_MS;
	bool ended = pp_store_state_terminal(r.state), got_any = false;
	while (!rc) {
		rc = pp_exec_run_op(pool->prov, PP_OP_LOGS, &io, NULL, &err);
		/* Following a run whose cleanup removed what held its output
		 * (ACI deletes it with the group): what was read is all. */
		if (rc == PP_ENOTFOUND && o.follow && got_any && ended) {
			fprintf(stderr, "pushpool runs logs: run %s: %s; its output ends here\n",
				r.id, err.msg);
			rc = 0;
			break;
		}
		if (rc)
			break;
		size_t got = logs.n;
		bool more = logs.more;
		got_any = got_any || got;
		st = emit(&logs, &ring);
		pp_logs_clear(&logs);
		if (st)
			break;
		if (more)
			continue;
		/* Read to the end of what is written: the tail so far. */
		if (ring.v)
			ring_flush(&ring);
		if (!o.follow || ended)
			break;
		wait = got ? FOLLOW_POLL_MS
			   : (wait * 2 > FOLLOW_POLL_MAX_MS ? FOLLOW_POLL_MAX_MS : wait * 2);
		/* The cloud's own least wait (a read quota) wins. */
		sleep_ms(io.poll_after_ms > wait ? io.poll_after_ms : wait);
		/* Terminal now: one more read takes what it wrote last. */
		if ((rc = reread(s, r.id, &r, &err)))
			break;
		ended = pp_store_state_terminal(r.state);
	}
	if (ring.v)
		ring_flush(&ring);
	if (rc) {
		fprintf(stderr, "pushpool runs logs: run %s: %s\n", r.id, err.msg);
		st = pp_exit_status(rc);
	} else if (st) {
		fprintf(stderr, "pushpool runs logs: out of memory\n");
	}
	pp_run_logs_close(pool, job, &io);
	pp_run_rec_free(&r);
	return st;
}
