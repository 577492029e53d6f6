/* The notify-socket protocol against real datagram sockets: a filesystem
 * path and an abstract name, the watchdog period and its pacing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/notify.h"

struct listener {
	int fd;
	char dir[64];
	char name[108]; /* what NOTIFY_SOCKET is set to */
};

static void listen_path(struct listener *l)
{
	snprintf(l->dir, sizeof(l->dir), "/tmp/pp-notify-XXXXXX");
	assert_non_null(mkdtemp(l->dir));
	snprintf(l->name, sizeof(l->name), "%s/notify", l->dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", l->name);
	l->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(l->fd >= 0);
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", l->name, 1);
}

static void listen_abstract(struct listener *l)
{
	l->dir[0] = '\0';
	snprintf(l->name, sizeof(l->name), "@pp-notify-test-%d", (int)getpid());
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(l->name);
	memcpy(sa.sun_path, l->name, n);
	sa.sun_path[0] = '\0';
	l->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(l->fd >= 0);
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)),
			 0);
	setenv("NOTIFY_SOCKET", l->name, 1);
}

static void listener_close(struct listener *l)
{
	close(l->fd);
	if (l->dir[0]) {
		unlink(l->name);
		rmdir(l->dir);
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

/* The next datagram, or "" when none is waiting. */
static void next_message(struct listener *l, char *out, size_t n)
{
	ssize_t got = recv(l->fd, out, n - 1, MSG_DONTWAIT);
	if (got < 0) {
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		got = 0;
	}
	out[got] = '\0';
}

static void test_path_socket_gets_ready_and_stopping(void **state)
{
	struct listener l;
	char msg[256];
	listen_path(&l);
	pp_notify_ready();
	next_message(&l, msg, sizeof(msg));
	assert_string_equal(msg, "READY=1\nSTATUS=dispatching");
	pp_notify_stopping();
	next_message(&l, msg, sizeof(msg));
	assert_int_equal(strncmp(msg, "STOPPING=1\n", 11), 0);
	listener_close(&l);
}

static void test_abstract_socket(void **state)
{
	struct listener l;
	char msg[256];
	struct pp_error err = {0};
	listen_abstract(&l);
	assert_int_equal(pp_notify_send("READY=1", &err), 0);
	next_message(&l, msg, sizeof(msg));
	assert_string_equal(msg, "READY=1");
	listener_close(&l);
}

static void test_reloading_carries_monotonic_time(void **state)
{
	struct listener l;
	char msg[256];
	listen_path(&l);
	pp_notify_reloading();
	next_message(&l, msg, sizeof(msg));
	const char prefix[] = "RELOADING=1\nMONOTONIC_USEC=";
	assert_int_equal(strncmp(msg, prefix, sizeof(prefix) - 1), 0);
	char *end;
	unsigned long long usec = strtoull(msg + sizeof(prefix) - 1, &end, 10);
	assert_true(usec > 0);
	assert_int_equal(*end, '\n');
	listener_close(&l);
}

static void test_unset_socket_is_a_no_op(void **state)
{
	struct pp_error err = {0};
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(pp_notify_send("READY=1", &err), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(pp_notify_send("READY=1", &err), 0);
	unsetenv("NOTIFY_SOCKET");
}

static void test_bad_addresses(void **state)
{
	struct pp_error err = {0};
	setenv("NOTIFY_SOCKET", "relative/socket", 1);
	assert_int_equal(pp_notify_send("READY=1", &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "relative/socket"));

	char longname[200];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(pp_notify_send("READY=1", &err), PP_EINVALID);

	/* Nobody listening: the send fails and says where it went. */
	setenv("NOTIFY_SOCKET", "/nonexistent-dir/notify", 1);
	assert_int_equal(pp_notify_send("READY=1", &err), PP_EIO);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/notify"));
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_period(void **state)
{
	char pid[32];
	unsetenv("WATCHDOG_USEC");
	assert_int_equal(pp_notify_watchdog_ms(), 0);
	setenv("WATCHDOG_USEC", "3000000", 1);
	assert_int_equal(pp_notify_watchdog_ms(), 3000);
	setenv("WATCHDOG_USEC", "1500", 1);
	assert_int_equal(pp_notify_watchdog_ms(), 2);
	setenv("WATCHDOG_USEC", "12abc", 1);
	assert_int_equal(pp_notify_watchdog_ms(), 0);
	setenv("WATCHDOG_USEC", "0", 1);
	assert_int_equal(pp_notify_watchdog_ms(), 0);

	setenv("WATCHDOG_USEC", "3000000", 1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(pp_notify_watchdog_ms(), 3000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(pp_notify_watchdog_ms(), 0);
	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
}

/* Keep-alives go out every half period, not on every loop turn. */
static void test_watchdog_pacing(void **state)
{
	struct listener l;
	char msg[64];
	listen_path(&l);

	pp_notify_watchdog(1000);
	next_message(&l, msg, sizeof(msg));
	assert_string_equal(msg, ""); /* no watchdog armed: nothing sent */

	setenv("WATCHDOG_USEC", "1000000", 1);
	pp_notify_watchdog(10000);
	next_message(&l, msg, sizeof(msg));
	assert_string_equal(msg, "WATCHDOG=1");
	pp_notify_watchdog(10499);
	next_message(&l, msg, sizeof(msg));
	assert_string_equal(msg, "");
	pp_notify_watchdog(10500);
	next_message(&l, msg, sizeof(msg));
	assert_string_equal(msg, "WATCHDOG=1");
	pp_notify_watchdog(10600);
	next_message(&l, msg, sizeof(msg));
	assert_string_equal(msg, "");
	listener_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_socket_gets_ready_and_stopping),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_reloading_carries_monotonic_time),
		cmocka_unit_test(test_unset_socket_is_a_no_op),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_watchdog_period),
		cmocka_unit_test(test_watchdog_pacing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
