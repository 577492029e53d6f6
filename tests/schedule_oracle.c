/* Test driver for tests/scenario/schedule_oracle.sh: reads one question a
 * line on stdin and prints the slots pushpool computes, one answer a line,
 * so the scenario can compare them with croniter and dateutil.
 *
 * Question (tab-separated): KIND TZ ARG TEXT FROM TO CAP
 *   KIND cron:     ARG is day_or (1/0), TEXT the expression
 *   KIND rrule:    ARG unused, TEXT the rule with '|' for a line break
 *   KIND interval: ARG is the interval in seconds, TEXT the anchor instant
 * FROM and TO are instants (UTC seconds), CAP the most slots wanted.
 * Answer: the slots in [FROM, TO) separated by blanks, or "ERR message". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/schedule.h"

#define LINE_MAX_LEN 4096

static void answer(char *line)
{
	char *f[7];
	int n = 0;
	for (char *p = line; n < 7; n++) {
		f[n] = p;
		char *tab = strchr(p, '\t');
		if (!tab) {
			n++;
			break;
		}
		*tab = '\0';
		p = tab + 1;
	}
	if (n != 7) {
		printf("ERR expected 7 fields, got %d\n", n);
		return;
	}
	for (char *p = f[3]; *p; p++)
		if (*p == '|')
			*p = '\n';
	struct pp_schedule_spec spec = {.timezone = f[1]};
	if (strcmp(f[0], "cron") == 0) {
		spec.kind = PP_SCHEDULE_CRON;
		spec.cron = f[3];
		spec.day_or = strcmp(f[2], "1") == 0;
	} else if (strcmp(f[0], "rrule") == 0) {
		spec.kind = PP_SCHEDULE_RRULE;
		spec.rrule = f[3];
	} else {
		spec.kind = PP_SCHEDULE_INTERVAL;
		spec.interval = strtoll(f[2], NULL, 10);
		spec.anchor = strtoll(f[3], NULL, 10);
	}
	struct pp_error err = {0};
	struct pp_schedule *s = NULL;
	size_t cap = strtoul(f[6], NULL, 10), got = 0;
	int64_t *slots = calloc(cap ? cap : 1, sizeof(*slots));
	bool more;
	int rc = slots ? pp_schedule_new(&spec, &s, &err) : PP_ENOMEM;
	if (!rc)
		rc = pp_schedule_between(s, strtoll(f[4], NULL, 10), strtoll(f[5], NULL, 10), cap,
					 slots, &got, &more, &err);
	if (rc) {
		printf("ERR %s\n", err.msg);
	} else {
		for (size_t i = 0; i < got; i++)
			printf(i ? " %lld" : "%lld", (long long)slots[i]);
		putchar('\n');
	}
	pp_schedule_free(s);
	free(slots);
}

int main(void)
{
	static char line[LINE_MAX_LEN];
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		answer(line);
	}
	return fflush(stdout) ? 1 : 0;
}
