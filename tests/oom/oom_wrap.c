/* Allocation failure injection for the OOM torture (tests/oom/run.sh).
 * Linked into a unit test with -Wl,--wrap for each allocator our code
 * calls, so only allocations made by pushpool and the test itself can fail,
 * never those inside libcurl, OpenSSL or libc. OOM_FAIL_AT=N makes the Nth
 * such allocation return NULL (once); OOM_COUNT_FILE receives the number of
 * allocations at exit, so a clean run tells the runner how many N to try.
 * The failed call's site goes to stderr as "oom_wrap: ... FILE+0xOFFSET",
 * for addr2line: the runner tells a test's own unchecked allocation from
 * one in pushpool. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t m, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **out, const char *fmt, va_list ap);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t m, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap);
int __wrap_asprintf(char **out, const char *fmt, ...);

static unsigned long allocations;
static long fail_at = -1;

static int should_fail(const void *caller)
{
	if (fail_at < 0) {
		const char *s = getenv("OOM_FAIL_AT");
		fail_at = s ? atol(s) : 0;
	}
	if (++allocations != (unsigned long)fail_at)
		return 0;
	Dl_info info;
	if (dladdr(caller, &info) && info.dli_fname)
		fprintf(stderr, "oom_wrap: failing allocation %lu called from %s+0x%lx\n",
			allocations, info.dli_fname,
			(unsigned long)((const char *)caller - (const char *)info.dli_fbase) - 1);
	return 1;
}

void *__wrap_malloc(size_t n)
{
	return should_fail(__builtin_return_address(0)) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t m, size_t n)
{
	return should_fail(__builtin_return_address(0)) ? NULL : __real_calloc(m, n);
}

void *__wrap_realloc(void *p, size_t n)
{
	return should_fail(__builtin_return_address(0)) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return should_fail(__builtin_return_address(0)) ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return should_fail(__builtin_return_address(0)) ? NULL : __real_strndup(s, n);
}

int __wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
	if (should_fail(__builtin_return_address(0))) {
		*out = NULL;
		return -1;
	}
	return __real_vasprintf(out, fmt, ap);
}

int __wrap_asprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = __wrap_vasprintf(out, fmt, ap);
	va_end(ap);
	return rc;
}

__attribute__((destructor)) static void report_count(void)
{
	const char *path = getenv("OOM_COUNT_FILE");
	FILE *f = path ? fopen(path, "w") : NULL;
	if (f) {
		fprintf(f, "%lu\n", allocations);
		fclose(f);
	}
}
