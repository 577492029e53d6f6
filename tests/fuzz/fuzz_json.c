/* libFuzzer entry for the JSON parser. Besides "no crash", it checks the
 * round trip the header promises: whatever parses, written compact and
 * parsed again, is an equal tree, and writing that gives the same text.
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pp_json_limits lim = {.max_bytes = 1 << 16, .max_depth = 32};
	struct pp_json *a = NULL, *b = NULL;
	struct pp_error err = {0};
	if (pp_json_parse((const char *)data, size, &lim, &a, &err))
		return 0;
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
