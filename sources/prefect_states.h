/* Pieces of the Prefect run source that need no server: timestamps in
 * Prefect's format, the flow-run state a store state is reported as, and
 * resolution of {{ prefect.blocks.<type>.<name>[.<field>] }} references in a
 * base job template. */
#ifndef PP_PREFECT_API_H
#define PP_PREFECT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/json.h"
#include "store/store.h"

/* A time as Prefect writes it ("2024-05-01T10:00:00.123456Z", with
 * "+00:00", or without a zone, meaning UTC) to ms since the epoch: RFC 3339
 * by lib/time.h with the zone optional. */
int pp_prefect_time_parse(const char *iso, int64_t *ms);
/* ms since the epoch to "YYYY-MM-DDTHH:MM:SS.mmmZ" (n >= PP_TIME_LEN
 * keeps it whole). */
void pp_prefect_time_format(int64_t ms, char *out, size_t n);

/* The Prefect state type a store state is reported as, or NULL when
 * nothing is reported. pushpool reports what Prefect's own worker reports
 * (src/prefect/workers/base.py, BaseWorker): CRASHED when the
 * infrastructure failed (_submit_run_and_capture_errors ->
 * _propose_crashed_state: a non-zero exit, a job that disappeared or never
 * started) and CANCELLED after a cancellation (_mark_flow_run_as_cancelled,
 * forced). Never RUNNING nor COMPLETED: the flow inside the job reports
 * those itself, and its process exits 0 whether the flow completed,
 * failed, crashed, was cancelled or paused, so an exit 0 says nothing
 * about the flow's state. */
const char *pp_prefect_state_for(enum pp_store_state st);

/* Whether answer, the server's OrchestrationResult for a PENDING proposal
 * made under transition_id, leaves the claim ours: ACCEPT, or the REJECT of
 * a duplicate, whose state (the run's current one) carries the proposal's
 * own transition_id: the first sending was applied and this answers a
 * resend of it (server/orchestration/core_policy.py,
 * PreventDuplicateTransitions, which rejects with the current state). */
bool pp_prefect_claim_ours(const struct pp_json *answer, const char *transition_id);

/* A final state type (Prefect's TERMINAL_STATES). */
bool pp_prefect_state_final(const char *type);

/* Whether a report of type want still goes out when the run's state, read
 * just before, is current (NULL: unknown). A final run keeps its state:
 * the server would abort CRASHED (HandleFlowTerminalStateTransitions) and
 * a forced CANCELLED would overwrite what the flow reported. */
bool pp_prefect_report_wanted(const char *want, const char *current);

/* Whether a report about an attempt still applies to the run as the server
 * shows it now (state type, its timestamp, infrastructure_pid), for an
 * attempt on infrastructure ours (NULL: none recorded) that ended at
 * ended_ms. It does not when the run has moved on to another attempt: it
 * runs on other infrastructure, or is SCHEDULED (a retry from the UI, a
 * resume, a reschedule), PENDING or RUNNING since a time after our attempt
 * ended. The old outcome would crash or cancel the new attempt. A SCHEDULED
 * from before the end is the flow's own AwaitingRetry during this attempt,
 * which Prefect's worker crashes too when the process dies. */
bool pp_prefect_same_attempt(const char *type, int64_t state_ms, const char *infra_pid,
			     const char *ours, int64_t ended_ms);

/* Fetch a block document's data object (caller frees *data). */
typedef int (*pp_prefect_block_fetch)(void *ud, const char *type_slug, const char *name,
				      struct pp_json **data, struct pp_error *err);

/* Replace every block reference in the strings of tmpl, in place. A string
 * that is only the reference takes the referenced JSON value (an object for
 * a whole block; a block whose data is just {"value": x} stands for x, as in
 * Prefect); a reference inside other text must name a string or number.
 * Errors name the template path. */
int pp_prefect_resolve_blocks(struct pp_json *tmpl, pp_prefect_block_fetch fetch, void *ud,
			      struct pp_error *err);

/* A variable's value (*value NULL: no such variable), and a block
 * document's data by id (caller frees). */
typedef int (*pp_prefect_variable_fetch)(void *ud, const char *name, struct pp_json **value,
					 struct pp_error *err);
typedef int (*pp_prefect_document_fetch)(void *ud, const char *id, struct pp_json **data,
					 struct pp_error *err);

/* Replace every {{ prefect.variables.NAME }} in the strings of job, in
 * place, as Prefect's resolve_variables does (utilities/templating): a
 * string that is only the placeholder takes the variable's value, of any
 * type, or "" when it does not exist; inside text it is the value's str(),
 * or nothing. */
int pp_prefect_resolve_variables(struct pp_json *job, pp_prefect_variable_fetch fetch, void *ud,
				 struct pp_error *err);

/* Replace every object {"$ref": {"block_document_id": ID}} in job by the
 * block document's data, as Prefect's resolve_block_document_references
 * does (the form its UI block pickers and --provision-infra write). */
int pp_prefect_resolve_documents(struct pp_json *job, pp_prefect_document_fetch fetch, void *ud,
				 struct pp_error *err);

/* The source itself (sources/prefect.c), for pp_sources[]. */
struct pp_source_ops;
extern const struct pp_source_ops pp_source_prefect;

#endif
