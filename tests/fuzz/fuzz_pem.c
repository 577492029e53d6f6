/* libFuzzer entry for lib/pem: any text, as a key file's private_key field
 * would hold it, is read without reading past its end, and answered 0,
 * PP_EINVALID or PP_ENOMEM. Seeds: the test keys (tests/data/keys).
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/pem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *pem = malloc(size + 1);
	if (!pem)
		return 0;
	memcpy(pem, data, size);
	pem[size] = '\0';
	int rc = pp_pem_rsa_private_key_check(pem);
	if (rc != 0 && rc != PP_EINVALID && rc != PP_ENOMEM)
		abort();
	free(pem);
	return 0;
}
