/* The last lines of a failed run's output in its outcome: when a run ends
 * FAILED or CRASHED, before its cleanup removes what holds the output (ACI
 * deletes a group's logs with it), the provider's logs op reads the run's
 * output once, and its last lines are appended to the outcome message, so
 * the run's error, its "finishing" event and what its source is told all
 * say why it failed (Prefect's ECS worker does this for crashed tasks).
 * Reading the logs never holds the outcome up for long nor changes it: a
 * failed read is logged and the run goes on to its cleanup. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/loop_impl.h"
#include "lib/log.h"

/* What of the output goes into the message: the last TAIL_LINES lines,
 * each cut at TAIL_LINE_BYTES, TAIL_BYTES in all (the message keeps the
 * newest that fit). */
#define TAIL_LINES	10
#define TAIL_LINE_BYTES 200
#define TAIL_BYTES	1024
/* Pages read at most to reach the end, and the time it may take. */
#define TAIL_PAGES_MAX 20
#define TAIL_BUDGET_MS 20000L

struct inflight_tail {
	struct pp_run_io io;
	struct pp_logs logs;
	int pages;
	char *ring[TAIL_LINES];
	int next, n;
};

void inflight_tail_free(struct inflight *a)
{
	struct inflight_tail *t = a->tail;
	if (!t)
		return;
	if (t->io.state)
		pp_exec_io_release(&t->io, a->pool->p->prov);
	pp_run_io_free_strings(&t->io); /* a provider without state */
	pp_logs_clear(&t->logs);
	for (int i = 0; i < TAIL_LINES; i++)
		free(t->ring[i]);
	free(t);
	a->tail = NULL;
}

static void keep_lines(struct inflight_tail *t)
{
	for (size_t i = 0; i < t->logs.n; i++) {
		char *s = t->logs.v[i].text;
		if (!*s)
			continue;
		if (strlen(s) > TAIL_LINE_BYTES)
			s[TAIL_LINE_BYTES] = '\0';
		free(t->ring[t->next]);
		t->ring[t->next] = s;
		t->logs.v[i].text = NULL;
		t->next = (t->next + 1) % TAIL_LINES;
		if (t->n < TAIL_LINES)
			t->n++;
	}
	pp_logs_clear(&t->logs);
}

/* final_msg + "; last output: L1 | L2 ...", the newest lines that fit. */
static void append_tail(struct inflight *a, struct inflight_tail *t)
{
	size_t cap;
	char *msg = inflight_msg(a, &cap);
	size_t room = cap - strlen(msg) - 1;
	const char *head = "; last output: ";
	int first = t->n;
	size_t used = strlen(head);
	/* From the newest back: how many fit. */
	for (int k = 0; k < t->n; k++) {
		const char *s = t->ring[(t->next - 1 - k + 2 * TAIL_LINES) % TAIL_LINES];
		size_t need = strlen(s) + (k ? 3 : 0);
		if (used + need > room || used + need > TAIL_BYTES)
			break;
		used += need;
		first = t->n - 1 - k;
	}
	if (first >= t->n)
		return;
	size_t len = strlen(msg);
	int start = t->n < TAIL_LINES ? 0 : t->next;
	len += (size_t)snprintf(msg + len, cap - len, "%s", head);
	for (int i = first; i < t->n; i++)
		len += (size_t)snprintf(msg + len, cap - len, "%s%s", i > first ? " | " : "",
					t->ring[(start + i) % TAIL_LINES]);
	/* The output may quote a secret the job was given. */
	pp_redact(msg);
}

static int start_page(struct pp_loop *L, struct inflight *a, struct pp_error *err);

static void tail_done(void *ud, int rc, const struct pp_error *err)
{
	struct inflight *a = ud;
	struct pp_loop *L = a->loop;
	struct inflight_tail *t = a->tail;
	struct pp_error e2 = {0};
	a->busy = false;
	if (!rc) {
		bool more = t->logs.more;
		keep_lines(t);
		if (more && ++t->pages < TAIL_PAGES_MAX && !(rc = start_page(L, a, &e2)))
			return;
	}
	if (rc)
		pp_warn("run %s: reading its last output failed: %s", a->rec.id,
			err ? err->msg : e2.msg);
	else
		append_tail(a, t);
	inflight_tail_free(a);
	inflight_after_tail(L, a);
}

static int start_page(struct pp_loop *L, struct inflight *a, struct pp_error *err)
{
	struct pp_exec_policy pol = L->policy;
	if (!pol.budget_ms || pol.budget_ms > TAIL_BUDGET_MS)
		pol.budget_ms = TAIL_BUDGET_MS;
	a->busy = true;
	int rc = pp_exec_start(L->exec, a->pool->p->prov, PP_OP_LOGS, &a->tail->io, &pol, tail_done,
			       a, err);
	if (rc)
		a->busy = false;
	return rc;
}

bool inflight_tail_logs(struct pp_loop *L, struct inflight *a)
{
	const struct pp_provider *prov = a->pool ? a->pool->p->prov : NULL;
	struct pp_error jerr = {0};
	if ((a->final != PP_ST_FAILED && a->final != PP_ST_CRASHED) || !prov || !prov->logs ||
	    inflight_job(a, &jerr) || !a->job || !a->io.infra_id)
		return false;
	struct inflight_tail *t = calloc(1, sizeof(*t));
	if (!t)
		return false;
	a->tail = t;
	struct pp_error err = {0};
	pp_pool_io_init(a->pool->p, &t->io, a->rec.id, a->rec.name, a->job);
	t->io.logs = &t->logs;
	int rc = pp_run_io_set_infra_id(&t->io, &err, "%s", a->io.infra_id)
			 ?: pp_exec_io_restore(&t->io, prov, &err);
	if (!rc && !(rc = start_page(L, a, &err)))
		return true;
	pp_warn("run %s: its last output is not read: %s", a->rec.id, err.msg);
	inflight_tail_free(a);
	return false;
}
