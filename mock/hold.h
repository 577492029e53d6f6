/* Answers held back by injected latency (latency_ms, token_delay_ms)
 * without a thread each: the connection is suspended with its answer
 * ready, and one thread resumes it when its time comes. A thread per
 * connection sleeping out its latency cost the mock a wake-up and a thread
 * switch of its own per answer: at +20 ms that was a third of the two
 * cores the bench shares with what it measures (docs/performance.md,
 * issue 23). */
#ifndef PP_MOCK_HOLD_H
#define PP_MOCK_HOLD_H

#include <stdint.h>

struct MHD_Connection;
struct pp_mock_hold;

/* 0, or PP_ENOMEM / PP_EIO (no thread). */
int pp_mock_hold_new(struct pp_mock_hold **out);
/* Resume conn, which the caller has just suspended, once pp_mono_us()
 * reaches due_us (at once after pp_mock_hold_release_all). 0, or
 * PP_ENOMEM: conn is still the caller's to resume. */
int pp_mock_hold_add(struct pp_mock_hold *h, struct MHD_Connection *conn, int64_t due_us);
/* Resume every connection held, at once, and stop the thread: no
 * suspended connection may outlive its daemon, so this goes before
 * MHD_stop_daemon. */
void pp_mock_hold_release_all(struct pp_mock_hold *h);
/* After pp_mock_hold_release_all (and the daemon's stop). NULL is a no-op. */
void pp_mock_hold_free(struct pp_mock_hold *h);

#endif
