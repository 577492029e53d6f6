# The pushpool binary's allocator: jemalloc, as redis links it. A run's
# JSON trees, SQLite's b-tree balancing and libcurl's buffers allocate and
# free in bursts of a loop turn, which glibc's malloc serves slowly
# (docs/performance.md, step 31). The mock's program links it too: on its
# daemon's threads glibc grew and shrank each thread's heap with mprotect
# as requests came and went, 8 % of its CPU at +20 ms (step 107), taken
# from the two cores the bench shares with what it measures. MALLOC=libc
# keeps glibc's for both: the sanitizer build of `make check` must, since
# ASan brings its own. Unit tests (valgrind, the OOM wrapper) and fuzz
# targets keep glibc's.
MALLOC ?= jemalloc
ifeq ($(MALLOC),jemalloc)
DEB_PKGS += libjemalloc-dev
MALLOC_LIBS := -ljemalloc
else ifeq ($(MALLOC),libc)
MALLOC_LIBS :=
else
$(error MALLOC is jemalloc or libc, not '$(MALLOC)')
endif
