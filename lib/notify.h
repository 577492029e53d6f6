/* Service readiness for systemd (Type=notify): the plain notify-socket
 * protocol, one datagram "KEY=VALUE\n..." per state change to the socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * Without $NOTIFY_SOCKET every call does nothing, so the daemon runs the
 * same from a shell, cron or a container. */
#ifndef PP_NOTIFY_H
#define PP_NOTIFY_H

#include <stdint.h>

#include "lib/err.h"

/* Send state (e.g. "READY=1") to $NOTIFY_SOCKET. 0 when sent or when the
 * variable is unset; PP_EINVALID for an unusable address, PP_EIO when the
 * datagram cannot be sent. */
int pp_notify_send(const char *state, struct pp_error *err);

/* The watchdog period systemd expects keep-alives within, in ms, from
 * $WATCHDOG_USEC (ignored when $WATCHDOG_PID names another process);
 * 0 when no watchdog is armed. */
int64_t pp_notify_watchdog_ms(void);

/* The daemon's state changes. Failures are logged once as a warning and
 * never stop the dispatcher: a supervisor that cannot be told is not a
 * reason to stop dispatching. */
void pp_notify_ready(void);
void pp_notify_stopping(void);
void pp_notify_reloading(void);

/* Call on every loop turn with the monotonic clock: sends WATCHDOG=1 once
 * half the watchdog period has passed since the last keep-alive. */
void pp_notify_watchdog(int64_t now_mono_ms);

#endif
