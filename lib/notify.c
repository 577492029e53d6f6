/* systemd notify-socket protocol without libsystemd: a datagram per state
 * change (see notify.h). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/notify.h"

static int notify_address(const char *name, struct sockaddr_un *sa, socklen_t *len,
			  struct pp_error *err)
{
	size_t n = strlen(name);
	if (name[0] != '/' && name[0] != '@')
		return pp_fail(err, PP_EINVALID,
			       "NOTIFY_SOCKET=%s: expected an absolute path or @abstract name",
			       name);
	if (n < 2 || n >= sizeof(sa->sun_path))
		return pp_fail(err, PP_EINVALID,
			       "NOTIFY_SOCKET: address of %zu bytes (1..%zu allowed)", n,
			       sizeof(sa->sun_path) - 1);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, name, n);
	/* Abstract names start with a NUL and are not NUL-terminated: the
	 * address length alone delimits them. */
	if (name[0] == '@')
		sa->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
	return 0;
}

int pp_notify_send(const char *state, struct pp_error *err)
{
	const char *name = getenv("NOTIFY_SOCKET");
	if (!name || !*name)
		return 0;
	struct sockaddr_un sa;
	socklen_t len = 0;
	int rc = notify_address(name, &sa, &len, err);
	if (rc)
		return rc;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pp_fail(err, PP_EIO, "notify socket: %s", strerror(errno));
	size_t n = strlen(state);
	ssize_t sent = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
	int saved = errno;
	close(fd);
	if (sent < 0)
		return pp_fail(err, PP_EIO, "notify %s: %s", name, strerror(saved));
	if ((size_t)sent != n)
		return pp_fail(err, PP_EIO, "notify %s: short send (%zd of %zu bytes)", name, sent,
			       n);
	return 0;
}

int64_t pp_notify_watchdog_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	char *end;
	if (!usec || !*usec)
		return 0;
	if (pid && *pid) {
		long p = strtol(pid, &end, 10);
		if (*end || p != (long)getpid())
			return 0;
	}
	errno = 0;
	unsigned long long v = strtoull(usec, &end, 10);
	if (errno || *end || v == 0)
		return 0;
	/* Round up so a sub-millisecond period still arms the watchdog. */
	return (int64_t)((v + 999) / 1000);
}

static void notify_or_warn(const char *state)
{
	static bool warned;
	struct pp_error err = {0};
	if (pp_notify_send(state, &err) && !warned) {
		warned = true;
		pp_warn("%s (further notify failures are not logged)", err.msg);
	}
}

void pp_notify_ready(void)
{
	notify_or_warn("READY=1\nSTATUS=dispatching");
}

void pp_notify_stopping(void)
{
	notify_or_warn("STOPPING=1\nSTATUS=stopping: finishing submissions under way");
}

void pp_notify_reloading(void)
{
	/* systemd >= 253 (Type=notify-reload) wants the reload's start time
	 * on the monotonic clock beside RELOADING=1; older ones ignore it. */
	char msg[96];
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		 (unsigned long long)pp_mono_ms() * 1000ULL);
	notify_or_warn(msg);
}

void pp_notify_watchdog(int64_t now_mono_ms)
{
	static int64_t last_sent = -1;
	int64_t period = pp_notify_watchdog_ms();
	if (period <= 0)
		return;
	if (last_sent >= 0 && now_mono_ms - last_sent < period / 2)
		return;
	last_sent = now_mono_ms;
	notify_or_warn("WATCHDOG=1");
}
