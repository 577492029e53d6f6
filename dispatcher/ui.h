/* The status page: a read-only web page and the JSON it reads (/api/),
 * served by `serve` on the metrics listener (docs/ui.md). It reads the run
 * store through a handle of its own (the listener runs on its own thread),
 * the configured pools, and the activity the metrics keep. */
#ifndef PP_UI_H
#define PP_UI_H

#include "lib/err.h"
#include "dispatcher/config.h"
#include "dispatcher/metrics.h"

struct pp_ui;

/* Bearer tokens longer than this are refused (the file is a secret file:
 * one line of text). */
#define PP_UI_TOKEN_MAX 512

/* Build the page for cfg (pools, ui_token_file) over the store at
 * store_url, reading activity from m. Fails when the token file cannot be
 * read. *out is the caller's (pp_ui_free); pass it to pp_metrics_set_page
 * with pp_ui_answer. When cfg->dispatcher.ui is off, *out stays NULL. */
int pp_ui_new(const struct pp_config *cfg, const char *store_url, struct pp_metrics *m,
	      struct pp_ui **out, struct pp_error *err);
/* Take a reloaded configuration's pools (the token file is read at start). */
int pp_ui_set_pools(struct pp_ui *ui, const struct pp_config *cfg, struct pp_error *err);
void pp_ui_free(struct pp_ui *ui);
void pp_ui_answer(void *ui, const struct pp_metrics_req *req, struct pp_metrics_resp *resp);

#endif
