/* The one monotonic clock, wall clock and UUID generator. */
#include "lib/clock.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>

#include "lib/err.h"

static int64_t ms_of(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pp_mono_ms(void)
{
	return ms_of(CLOCK_MONOTONIC);
}

int64_t pp_wall_ms(void)
{
	return ms_of(CLOCK_REALTIME);
}

int pp_uuid4(char out[PP_UUID_LEN])
{
	unsigned char b[16];
	ssize_t got;
	/* getrandom blocks only until the kernel's pool is first seeded. */
	do
		got = getrandom(b, sizeof(b), 0);
	while (got < 0 && errno == EINTR);
	if (got != (ssize_t)sizeof(b)) {
		out[0] = '\0';
		return PP_EIO;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	static const char hex[] = "0123456789abcdef";
	char *p = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
	}
	*p = '\0';
	return 0;
}
