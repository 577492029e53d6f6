/* libFuzzer entry for the JSON parser. Besides "no crash", it checks the
 * round trip the header promises: whatever parses, written compact and
 * parsed again, is an equal tree, and writing that gives the same text;
 * and that pp_json_parse_keep agrees with pp_json_parse: the same error,
 * or the whole tree cut down to its paths (tests/json_keep_oracle.h).
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"
#include "tests/json_keep_oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pp_json_limits lim = {.max_bytes = 1 << 16, .max_depth = 32};
	/* Short names, so that inputs the fuzzer makes hit them; "" and a
	 * path ending in "." name empty keys. */
	static const char *const keep[] = {"a", "b.c", "b.d.e", "", "c.", NULL};
	struct pp_json *a = NULL, *b = NULL, *k = NULL;
	struct pp_error err = {0}, kerr = {0};
	int rc = pp_json_parse((const char *)data, size, &lim, &a, &err);
	int krc = pp_json_parse_keep((const char *)data, size, &lim, keep, &k, &kerr);
	if (krc != rc || (rc && (k || strcmp(err.msg, kerr.msg))))
		abort();
	if (rc)
		return 0;
	struct pp_json *cut = pp_json_clone(a);
	if (!cut)
		abort();
	json_keep_oracle(cut, keep);
	if (!pp_json_identical(cut, k))
		abort();
	pp_json_free(cut);
	pp_json_free(k);
	char *text = pp_json_to_string(a, PP_JSON_COMPACT);
	if (!text)
		abort();
	/* Written text may be longer than the input (escapes), so no byte cap. */
	static const struct pp_json_limits relim = {.max_bytes = 1 << 24, .max_depth = 32};
	if (pp_json_parse(text, strlen(text), &relim, &b, &err) || !pp_json_equal(a, b))
		abort();
	char *again = pp_json_to_string(b, PP_JSON_COMPACT);
	if (!again || strcmp(text, again))
		abort();
	/* Path lookup on a parsed tree must not fault whatever the path. */
	pp_json_path(a, "a.b[2].c");
	pp_json_path(a, "$[0][\"x.y\"]");
	free(again);
	free(text);
	pp_json_free(b);
	pp_json_free(a);
	return 0;
}
