#include "lib/base64.h"

int pp_base64_digit(unsigned char c, bool url_too)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || (url_too && c == '-'))
		return 62;
	if (c == '/' || (url_too && c == '_'))
		return 63;
	return -1;
}
