/* Base64 digits (RFC 4648), for the decoders that each read their own
 * framing (PEM's lines and padding, gRPC's unpadded details). */
#ifndef PP_BASE64_H
#define PP_BASE64_H

#include <stdbool.h>

/* The value (0..63) of base64 digit c, or -1. With url_too, the base64url
 * digits '-' and '_' count as well (62 and 63), for text that may be in
 * either alphabet. */
int pp_base64_digit(unsigned char c, bool url_too);

#endif
