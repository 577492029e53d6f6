/* `pushpool mock`: hand over to the test program pushpool-mock. The fake
 * clouds are not part of the product (they are neither linked in nor
 * installed); this command only saves test scripts from knowing where the
 * program lives. It runs the pushpool-mock beside the running binary
 * (a build tree keeps both in build/), else the first one in PATH, with the
 * same arguments, in this same process so that its pid and signals are the
 * caller's. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatcher/cmd/cmd.h"
#include "lib/err.h"

#define MOCK_PROGRAM "pushpool-mock"

/* dir/pushpool-mock for the directory of /proc/self/exe; 0 if it exists and
 * is executable. */
static int beside_self(char *out, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		return -1;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	if (snprintf(out, size, "%s/%s", self, MOCK_PROGRAM) >= (int)size)
		return -1;
	return access(out, X_OK);
}

int pp_cmd_mock(int argc, char **argv)
{
	char path[PATH_MAX], name[] = MOCK_PROGRAM;
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	int beside;

	if (!args) {
		fputs("pushpool mock: out of memory\n", stderr);
		return PP_EXIT_SOFTWARE;
	}
	args[0] = name;
	for (int i = 1; i < argc; i++)
		args[i] = argv[i];
	fflush(NULL);
	beside = beside_self(path, sizeof(path));
	if (beside == 0)
		execv(path, args);
	else
		execvp(MOCK_PROGRAM, args);
	/* Only reached when the exec failed. */
	if (beside == 0)
		fprintf(stderr, "pushpool mock: cannot run %s: %s\n", path, strerror(errno));
	else if (errno == ENOENT)
		fprintf(stderr, "pushpool mock: the test program " MOCK_PROGRAM
				" was found neither beside this binary nor in PATH; it is built by "
				"`make` into build/ and is not installed\n");
	else
		fprintf(stderr, "pushpool mock: cannot run " MOCK_PROGRAM ": %s\n",
			strerror(errno));
	free(args);
	return PP_EXIT_UNAVAILABLE;
}
