/* Logging: levels, text or JSON lines, and redaction of registered secrets. */
#ifndef PP_LOG_H
#define PP_LOG_H

#include <stddef.h>
#include <stdio.h>

enum pp_log_level { PP_LOG_DEBUG, PP_LOG_INFO, PP_LOG_WARN, PP_LOG_ERROR };
enum pp_log_format { PP_LOG_TEXT, PP_LOG_JSON };

void pp_log_setup(enum pp_log_level min, enum pp_log_format fmt, FILE *out);
int pp_log_level_parse(const char *s, enum pp_log_level *out);

/* Register a secret value (a key, token, password): from now on it is
 * replaced by "[REDACTED]" in every log line and in pp_redact() output,
 * and so is every encoding it is sent in, for a server that echoes a
 * request: percent-encoded (form "+" or "%20" for a space, either hex
 * case), base64 and base64url (alone, or inside a longer encoded text such
 * as a Basic header), JSON-escaped (with or without "\/" and \uXXXX).
 * Values shorter than 4 bytes are ignored (would redact common text). */
void pp_secret_register(const char *value);
/* The same for a value that is replaced over time (an access token, a
 * temporary key, a run's secret variable): the newest 8192 of these (each
 * with its encodings) are
 * kept, the oldest making room, so a long-running process never runs out
 * of room to register the current ones. */
void pp_secret_register_rotating(const char *value);
/* Forget all registered secrets (tests). */
void pp_secret_clear(void);
/* Replace registered secrets in s, in place (result is never longer). */
void pp_redact(char *s);

void pp_log(enum pp_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Between pp_log_hold() and pp_log_release(), DEBUG and INFO lines are
 * gathered and written together, so a busy loop pays one write a turn
 * rather than one a line. A WARN or ERROR line is written at once, after
 * the lines gathered before it (the order is kept), and so are the
 * gathered lines when the next would take them past 16 KiB.
 * pp_log_flush() writes what is gathered and goes on gathering: the
 * holder calls it before it waits, so no line sits unwritten while
 * nothing happens. */
void pp_log_hold(void);
void pp_log_flush(void);
void pp_log_release(void);
#define pp_debug(...) pp_log(PP_LOG_DEBUG, __VA_ARGS__)
#define pp_info(...)  pp_log(PP_LOG_INFO, __VA_ARGS__)
#define pp_warn(...)  pp_log(PP_LOG_WARN, __VA_ARGS__)
#define pp_error(...) pp_log(PP_LOG_ERROR, __VA_ARGS__)

#endif
