/* Driver for tests/scenario/yaml_oracle.sh: for each file named on the
 * command line, one line on stdout: the document read by lib/yaml as
 * compact JSON, or "ERR message". */
#include <stdio.h>
#include <stdlib.h>

#include "lib/yaml.h"

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		struct pp_json *j = NULL;
		struct pp_error err = {0};
		if (pp_yaml_parse_file(argv[i], NULL, &j, &err)) {
			printf("ERR %s\n", err.msg);
			continue;
		}
		char *text = pp_json_to_string(j, PP_JSON_COMPACT);
		if (!text)
			return 70;
		printf("%s\n", text);
		free(text);
		pp_json_free(j);
	}
	return fflush(stdout) ? 74 : 0;
}
