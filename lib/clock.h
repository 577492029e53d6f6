/* Clocks and ids: monotonic milliseconds (intervals, deadlines, backoff),
 * wall-clock milliseconds (timestamps stored and shown), UUIDs (random v4,
 * and time-ordered v7 for run ids). */
#ifndef PP_CLOCK_H
#define PP_CLOCK_H

#include <stdint.h>

/* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" and its NUL. */
#define PP_UUID_LEN 37

/* Milliseconds on CLOCK_MONOTONIC: never jumps with the wall clock; only
 * differences mean anything. */
int64_t pp_mono_ms(void);
/* Tests only: where pp_mono_ms reads time from (NULL: CLOCK_MONOTONIC), so
 * a test moves time forward instead of sleeping and racing a busy machine.
 * Set it before any thread that reads the clock starts. */
void pp_mono_set_source(int64_t (*source)(void));
/* The same clock in microseconds, for intervals too short for
 * milliseconds (the mock's request times, which the bench's windows of
 * tens of milliseconds are read from). */
int64_t pp_mono_us(void);
/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t pp_wall_ms(void);
/* A random RFC 4122 version 4 UUID, lower case. 0, or PP_EIO (out is then
 * "") when the kernel gives no random bytes: ids and JWT ids must not be
 * guessable, so there is no weaker fallback. */
int pp_uuid4(char out[PP_UUID_LEN]);
/* An RFC 9562 version 7 UUID, lower case: the wall-clock millisecond, a
 * counter, then 62 random bits. The ids of one process sort in the order
 * they were made, so rows keyed by them that are written together sit
 * together in an index (a run's events, issue 23), and they stay
 * unguessable. 0, or PP_EIO as pp_uuid4. */
int pp_uuid7(char out[PP_UUID_LEN]);

/* Full-jitter backoff: uniform in [0, min(cap, base*2^attempt)], never less
 * than retry_after_ms. */
long pp_backoff_ms(int attempt, long base_ms, long cap_ms, long retry_after_ms);

#endif
