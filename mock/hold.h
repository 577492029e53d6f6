/* Answers held back by injected latency (latency_ms, token_delay_ms)
 * without a thread each: the connection is suspended with its answer
 * ready, and one thread resumes it when its time comes. A thread per
 * connection sleeping out its latency cost the mock a wake-up and a thread
 * switch of its own per answer: at +20 ms that was a third of the two
 * cores the bench shares with what it measures (docs/performance.md,
 * issue 23). */
#ifndef PP_MOCK_HOLD_H
#define PP_MOCK_HOLD_H

#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;
struct pp_mock_hold;

/* Answers due within this long after the one a wake-up is for go with it:
 * a wake-up of the thread, and each worker thread of the daemon that a
 * resume wakes, cost more than the answers themselves when one went at a
 * time (at +20 ms, a wake-up for nearly every request: docs/
 * performance.md, step 107). So an answer leaves at most this early;
 * never before the first one due is. */
#define PP_MOCK_HOLD_SLACK_US 1000

/* Called on the holder's thread with the connections whose time came,
 * n >= 1, in the order they are due; the mock's resumes each
 * (MHD_resume_connection). */
typedef void (*pp_mock_hold_resume_fn)(void *ud, struct MHD_Connection *const *conns, size_t n);

/* 0, or PP_ENOMEM / PP_EIO (no thread). */
int pp_mock_hold_new(struct pp_mock_hold **out, pp_mock_hold_resume_fn resume, void *ud);
/* Resume conn, which the caller has just suspended, once pp_mono_us()
 * reaches due_us, or with an earlier one's batch from PP_MOCK_HOLD_SLACK_US
 * before it (at once after pp_mock_hold_release_all). 0, or PP_ENOMEM:
 * conn is still the caller's to resume. */
int pp_mock_hold_add(struct pp_mock_hold *h, struct MHD_Connection *conn, int64_t due_us);
/* Resume every connection held, at once, and stop the thread: no
 * suspended connection may outlive its daemon, so this goes before
 * MHD_stop_daemon. */
void pp_mock_hold_release_all(struct pp_mock_hold *h);
/* After pp_mock_hold_release_all (and the daemon's stop). NULL is a no-op. */
void pp_mock_hold_free(struct pp_mock_hold *h);

#endif
