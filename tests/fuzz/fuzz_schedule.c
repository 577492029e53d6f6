/* libFuzzer entry for schedules (lib/cron, lib/schedule, lib/tz). The first
 * byte picks the kind and a zone, the rest is the cron or rrule text.
 * Besides "no crash and no spin" (run.sh's -timeout), it checks what the
 * header promises: slots are strictly ascending and after the instant
 * asked about, and the slots in a range are the ones `next` gives.
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const zones[] = {"UTC", "Europe/Berlin", "Australia/Lord_Howe",
					    "America/New_York"};
	if (size < 1 || size > 2048)
		return 0;
	char *text = malloc(size);
	if (!text)
		abort();
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	struct pp_schedule_spec spec = {.timezone = zones[data[0] >> 1 & 3],
					.day_or = data[0] >> 3 & 1};
	if (data[0] & 1) {
		spec.kind = PP_SCHEDULE_RRULE;
		spec.rrule = text;
	} else {
		spec.kind = PP_SCHEDULE_CRON;
		spec.cron = text;
	}
	struct pp_schedule *s = NULL;
	struct pp_error err = {0};
	if (pp_schedule_new(&spec, &s, &err) == 0) {
		/* 2026-03-28T00:00Z: the next slots cross Berlin's spring change */
		const int64_t after = 1774656000;
		int64_t next[8], range[8];
		size_t n = 0, r = 0;
		bool more;
		if (pp_schedule_next(s, after, 8, next, &n, &err) == 0) {
			for (size_t i = 0; i < n; i++)
				if (next[i] <= (i ? next[i - 1] : after))
					abort();
			if (n &&
			    pp_schedule_between(s, after + 1, next[n - 1] + 1, 8, range, &r, &more,
						&err) == 0 &&
			    (r != n || more || memcmp(range, next, n * sizeof(*next))))
				abort();
		}
		struct pp_buf canon;
		pp_buf_init(&canon, 4096);
		pp_schedule_canonical(s, &canon);
		pp_buf_free(&canon);
	}
	pp_schedule_free(s);
	free(text);
	return 0;
}
