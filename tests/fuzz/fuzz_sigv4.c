/* libFuzzer entry for the SigV4 canonicalizer. Input: method NUL path NUL
 * query NUL header lines ("name:value\n") NUL body, with a first byte of
 * flags (normalize, session token). Besides "no crash", it checks what must
 * hold for any request: signing is deterministic, the canonical query is a
 * fixed point (signing it again yields itself), signed headers are sorted,
 * lowercase and unique, and the signature is 64 hex digits.
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

#define FUZZ_MAX_HEADERS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Next NUL-terminated field of [*p, end); the last one runs to end. */
static char *next_field(const char **p, const char *end)
{
	const char *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
	char *s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, *p, n);
	s[n] = '\0';
	*p = nul ? nul + 1 : end;
	return s;
}

static void check_signed_headers(const char *list)
{
	const char *prev = NULL;
	size_t prev_len = 0;
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ";");
		for (size_t i = 0; i < n; i++)
			if (p[i] >= 'A' && p[i] <= 'Z')
				abort();
		if (prev) {
			int c = strncmp(prev, p, prev_len < n ? prev_len : n);
			if (c > 0 || (c == 0 && prev_len >= n))
				abort();
		}
		prev = p;
		prev_len = n;
		p += n + (p[n] == ';');
	}
}

/* Third line of a canonical request. */
static char *canonical_query(const char *cr)
{
	const char *a = strchr(cr, '\n');
	const char *b = a ? strchr(a + 1, '\n') : NULL;
	const char *c = b ? strchr(b + 1, '\n') : NULL;
	if (!c)
		abort();
	return strndup(b + 1, (size_t)(c - b - 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 1 << 16)
		return 0;
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	unsigned flags = data[0];
	char *method = next_field(&p, end);
	char *path = next_field(&p, end);
	char *query = next_field(&p, end);
	char *header_text = next_field(&p, end);
	const char *body = p;
	size_t body_len = (size_t)(end - p);
	const char *names[FUZZ_MAX_HEADERS + 1], *values[FUZZ_MAX_HEADERS + 1];
	size_t n = 0;

	names[n] = "host";
	values[n++] = "example.amazonaws.com";
	for (char *save = NULL, *line = strtok_r(header_text, "\n", &save);
	     line && n < FUZZ_MAX_HEADERS + 1; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');
		if (!colon || colon == line)
			continue;
		*colon = '\0';
		names[n] = line;
		values[n++] = colon + 1;
	}
	struct pp_sigv4_input in = {
		.method = *method ? method : "GET",
		.path = path,
		.query = query,
		.header_names = names,
		.header_values = values,
		.nheaders = n,
		.payload = body,
		.payload_len = body_len,
		.access_key_id = "AKIDEXAMPLE",
		.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		.session_token = (flags & 2) ? "token" : NULL,
		.region = "us-east-1",
		.service = "service",
		.when = 1440938160,
		.normalize_path = flags & 1,
	};
	struct pp_sigv4_output a, b;
	struct pp_error err = {0};
	pp_sigv4_output_init(&a);
	pp_sigv4_output_init(&b);
	if (!pp_sigv4_sign(&in, &a, &err)) {
		if (strlen(a.signature) != 64 || strspn(a.signature, "0123456789abcdef") != 64)
			abort();
		check_signed_headers(a.signed_headers.data);
		if (pp_sigv4_sign(&in, &b, &err) ||
		    strcmp(a.authorization.data, b.authorization.data))
			abort();
		char *q = canonical_query(a.canonical_request.data);
		in.query = q;
		if (pp_sigv4_sign(&in, &b, &err) ||
		    strcmp(a.canonical_request.data, b.canonical_request.data))
			abort();
		free(q);
	}
	pp_sigv4_output_free(&a);
	pp_sigv4_output_free(&b);
	free(method);
	free(path);
	free(query);
	free(header_text);
	return 0;
}
