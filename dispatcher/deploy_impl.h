/* What the two readers of declared deployments share (deploy_file.c for
 * prefect.yaml, deploy_config.c for [deployment "NAME"] sections): value
 * grammars, the schedule and parameter checks, and freeing. Not an
 * interface: only those files and deploy_spec.c include it. */
#ifndef PP_DEPLOY_IMPL_H
#define PP_DEPLOY_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "dispatcher/deploy_spec.h"
#include "lib/json.h"

/* Longest deployment name (Prefect's names are free text less a few
 * characters; the store keys on them). */
#define PP_DEPLOY_NAME_MAX 128
/* Every [deployment] or prefect.yaml deployment list holds at most this
 * many deployments, and each at most this many schedules. */
#define PP_DEPLOY_MAX		1000
#define PP_DEPLOY_SCHEDULES_MAX 100

/* Why a name is refused (static text), or NULL when it is fine: non-empty,
 * at most PP_DEPLOY_NAME_MAX bytes, no control characters and none of
 * Prefect's banned "/%&<>". */
const char *deploy_name_problem(const char *name);

/* An interval: whole seconds as a number, a duration ("1h", "90", "2 d"),
 * ISO 8601 ("PT1H", "P1DT12H", "P2W") or Python's timedelta text
 * ("01:00:00", "1 day, 0:00:00"), as Prefect reads them. Fills why. */
int deploy_parse_interval(const char *text, int64_t *seconds, char *why, size_t whyn);
/* anchor_date: RFC 3339 with a zone is that instant; a date or date-time
 * without one is a wall time in tz (NULL: UTC). */
int deploy_parse_anchor(const char *text, const char *tz, int64_t *instant, char *why, size_t whyn);
/* The default anchor when none is given: 2020-01-01T00:00 on tz's clock
 * (fixed, so applying a file twice gives the same schedule). */
int deploy_default_anchor(const char *tz, int64_t *instant, char *why, size_t whyn);

int deploy_parse_catchup(const char *text, enum pp_catchup *out);
int deploy_parse_overlap(const char *text, enum pp_overlap *out);
/* ENQUEUE or CANCEL_NEW, as Prefect spells them (any case). */
int deploy_parse_collision(const char *text, enum pp_collision *out);
extern const char *const deploy_catchup_names[];
extern const char *const deploy_overlap_names[];

/* The common checks once a spec is filled: every schedule compiles (its
 * spec pointers are set from the owned strings), the pool exists in cfg
 * (when cfg is given), parameters match the schema (required ones may be
 * left for `deployment run -p`, but every active schedule's runs must have
 * them). Messages start with the deployment's where and name. */
int deploy_check(struct pp_deploy_spec *d, const struct pp_config *cfg, struct pp_error *err);

/* Free what d owns and zero it. */
void deploy_spec_clear(struct pp_deploy_spec *d);
/* "FILE:LINE". */
char *deploy_where(const char *file, int line);

#endif
