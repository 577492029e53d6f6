/* libFuzzer entry for the config parser: the input is a pushpool.conf.
 * pp_config_load reads a path, so the bytes go into a memfd named through
 * /proc/self/fd. Whatever loads is validated and printed back (secrets as
 * [REDACTED]); the printed form must load again. The `check` report path
 * runs too. Each input starts with no secret registered, as `pushpool
 * check --print` does in a process of its own: the log's registry is the
 * process's, and a secret an earlier input registered ("pool", say) was
 * masked in every later input's printed form, which then failed to load.
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dispatcher/config.h"
#include "lib/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int write_memfd(const void *p, size_t n, char *path, size_t path_size)
{
	int fd = memfd_create("fuzz.conf", 0);
	if (fd < 0)
		abort();
	if (n && write(fd, p, n) != (ssize_t)n)
		abort();
	snprintf(path, path_size, "/proc/self/fd/%d", fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 16)
		return 0;
	pp_secret_clear();
	char path[64];
	int fd = write_memfd(data, size, path, sizeof(path));
	struct pp_config c;
	struct pp_error err = {0};
	struct pp_buf out, problems;
	pp_buf_init(&out, 1 << 20);
	pp_buf_init(&problems, 1 << 20);
	if (pp_config_init(&c, &err))
		abort();
	if (!pp_config_load(&c, path, &err)) {
		pp_config_validate(&c, &problems);
		if (pp_config_print(&c, &out))
			abort();
		char again_path[64];
		int fd2 = write_memfd(out.data, out.len, again_path, sizeof(again_path));
		struct pp_config again;
		if (pp_config_init(&again, &err))
			abort();
		/* Secrets are masked wherever they appear in the printed
		 * form, a name or a key included: [REDACTED], or as many '*'
		 * for one shorter than that marker (at least 4: "pool" makes
		 * the key "pools" "****s"); the message is masked alike. And
		 * file paths may not exist. Otherwise the printed syntax
		 * itself must always load. */
		if (pp_config_load(&again, again_path, &err) && !strstr(err.msg, "REDACTED") &&
		    !strstr(err.msg, "****") && !strstr(err.msg, "No such file"))
			abort();
		pp_config_free(&again);
		close(fd2);
	}
	pp_config_free(&c);
	pp_buf_reset(&problems);
	struct pp_config r;
	if (pp_config_init(&r, &err))
		abort();
	pp_config_load_report(&r, path, &problems, &err);
	pp_config_free(&r);
	pp_buf_free(&problems);
	pp_buf_free(&out);
	close(fd);
	return 0;
}
