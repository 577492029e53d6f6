/* The one monotonic clock, wall clock and UUID generator. */
#include "lib/clock.h"

#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>
#include <sys/random.h>
#include <time.h>

#include "lib/err.h"

static int64_t us_of(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t (*mono_source)(void);

void pp_mono_set_source(int64_t (*source)(void))
{
	mono_source = source;
}

int64_t pp_mono_ms(void)
{
	return mono_source ? mono_source() : us_of(CLOCK_MONOTONIC) / 1000;
}

int64_t pp_mono_us(void)
{
	return mono_source ? mono_source() * 1000 : us_of(CLOCK_MONOTONIC);
}

int64_t pp_wall_ms(void)
{
	return us_of(CLOCK_REALTIME) / 1000;
}

static void uuid_format(const unsigned char b[16], char out[PP_UUID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
	}
	*p = '\0';
}

static int random_bytes(unsigned char *b, size_t n)
{
	ssize_t got;
	/* getrandom blocks only until the kernel's pool is first seeded. */
	do
		got = getrandom(b, n, 0);
	while (got < 0 && errno == EINTR);
	return got == (ssize_t)n ? 0 : PP_EIO;
}

int pp_uuid4(char out[PP_UUID_LEN])
{
	unsigned char b[16];
	if (random_bytes(b, sizeof(b))) {
		out[0] = '\0';
		return PP_EIO;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	uuid_format(b, out);
	return 0;
}

int pp_uuid7(char out[PP_UUID_LEN])
{
	/* The 48-bit millisecond and the 12-bit counter of the last id made,
	 * as one number: the next id takes the larger of it plus one and the
	 * clock, so ids made in one millisecond (a claim's worth of runs)
	 * still sort in the order they were made (RFC 9562, 6.2 method 1). */
	static _Atomic uint64_t last;
	uint64_t now = (uint64_t)pp_wall_ms() << 12, prev = atomic_load(&last), next;
	do
		next = prev + 1 > now ? prev + 1 : now;
	while (!atomic_compare_exchange_weak(&last, &prev, next));

	unsigned char b[16];
	if (random_bytes(b + 8, 8)) {
		out[0] = '\0';
		return PP_EIO;
	}
	uint64_t ms = next >> 12;
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | ((next >> 8) & 0x0f)); /* version 7 */
	b[7] = (unsigned char)(next & 0xff);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 9562 variant */
	uuid_format(b, out);
	return 0;
}

/* xorshift64*, seeded once per thread from the kernel: backoff jitter only
 * needs to decorrelate dispatchers, not to be unpredictable. */
static uint64_t next_random(void)
{
	static _Thread_local uint64_t s;
	if (!s) {
		if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
			s = (uint64_t)pp_mono_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
		if (!s)
			s = 0x9E3779B97F4A7C15ull;
	}
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	return s * 0x2545F4914F6CDD1Dull;
}

long pp_backoff_ms(int attempt, long base_ms, long cap_ms, long retry_after_ms)
{
	if (base_ms < 1)
		base_ms = 1;
	if (cap_ms < base_ms)
		cap_ms = base_ms;
	if (attempt < 0)
		attempt = 0;
	long bound = base_ms;
	for (int i = 0; i < attempt && bound < cap_ms; i++)
		bound *= 2;
	if (bound > cap_ms)
		bound = cap_ms;
	long delay = (long)(next_random() % ((uint64_t)bound + 1));
	return delay < retry_after_ms ? retry_after_ms : delay;
}
