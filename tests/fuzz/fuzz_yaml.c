/* libFuzzer entry for lib/yaml. Besides "no crash, no leak, no spin"
 * (run.sh's -timeout), it checks what the header promises: a document that
 * parses is a JSON tree that writes out as JSON which parses back to an
 * equal tree, within the caps it was read under.
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Small caps so alias and merge bombs hit them within one input. */
	const struct pp_yaml_limits lim = {
		.max_bytes = 8192, .max_depth = 16, .max_nodes = 5000, .max_anchors = 16};
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	if (pp_yaml_parse((const char *)data, size, "fuzz", &lim, &j, &err)) {
		if (j || !err.msg[0])
			abort();
		return 0;
	}
	char *text = pp_json_to_string(j, PP_JSON_COMPACT);
	if (!text)
		abort();
	struct pp_json *back = NULL;
	const struct pp_json_limits jl = {.max_depth = 64};
	if (pp_json_parse(text, strlen(text), &jl, &back, &err) || !pp_json_equal(j, back))
		abort();
	pp_json_free(back);
	free(text);
	pp_json_free(j);
	return 0;
}
