/* Shared, counted copies of strings that many owners hold the same value
 * of: what every run of a pool carries (its API base URL, cluster, region,
 * container name, task definition) is then kept once, not once per run in
 * flight. Thread-safe. */
#ifndef PP_INTERN_H
#define PP_INTERN_H

/* The shared copy of s, its count raised; NULL when out of memory. */
const char *pp_intern(const char *s);
/* One more count of a string pp_intern returned; s itself. */
const char *pp_intern_hold(const char *s);
/* Give up one count of a string pp_intern returned (NULL: nothing); the
 * copy is freed with its last count. */
void pp_intern_drop(const char *s);

#endif
