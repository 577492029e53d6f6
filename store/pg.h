/* The PostgreSQL run store (store/pg.c). pp_store_open selects
 * it for "postgresql://" and "postgres://" urls and refuses a database
 * whose schema is not current; `pushpool store migrate` opens it with the
 * call below and applies the migrations. */
#ifndef PP_STORE_PG_H
#define PP_STORE_PG_H

#include "store/store.h"

extern const struct pp_store_ops pp_store_pg;

/* Connect without checking the schema version (for migrate). */
int pp_store_pg_open_unmigrated(const char *url, struct pp_store **out, struct pp_error *err);

#endif
